"""session.core.envfile (DRfC dotenv files) and session.core.config (typed system.env / run.env / worker-N.env)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from session.core import envfile
from session.core.config import (
    RUN_KEYS,
    SYSTEM_KEYS,
    WORKER_KEYS,
    ConfigError,
    RunConfig,
    SystemConfig,
    default_run_env,
    default_run_env_text,
    default_system_env,
    load_config,
)
from session.core.envfile import format_value, parse_env_text, read_env_file, rewrite_env_file

DATA = Path(__file__).parents[1] / "data" / "config"
MINIMAL_SYSTEM = "DR_CLOUD=aws\nDR_SIMAPP_VERSION=6.0.4-gpu\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def parse(text: str, **kwargs) -> envfile.EnvFile:
    kwargs.setdefault("environ", {})
    return parse_env_text(text, "f.env", **kwargs)


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return str(caught.value)


def load(tmp_path: Path, run: str, system: str = MINIMAL_SYSTEM, environ=None):
    run_env = write(tmp_path / "run.env", run)
    system_env = write(tmp_path / "system.env", system)
    return load_config(run_env, system_env, environ={} if environ is None else environ)


def load_error(tmp_path: Path, run: str, system: str = MINIMAL_SYSTEM) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, run, system)
    return str(caught.value)


# --- envfile: parsing -----------------------------------------------------------------------------------------

def test_key_value_lines_comments_blanks_and_export_with_line_numbers():
    parsed = parse("# header\n\nA=1\n   # indented comment\nexport B=two\n  C=3\n")
    assert parsed.values == {"A": "1", "B": "two", "C": "3"}
    assert parsed.lines == {"A": 3, "B": 5, "C": 6}
    assert parsed.warnings == ()


def test_trailing_comment_needs_whitespace_before_the_hash_and_stays_out_of_quotes():
    parsed = parse("A=2   # workers\nB=a#b\nC='x # y' # z\nD=\"p #q\"\nE= # only a comment\nF=#literal\n")
    assert parsed.values == {"A": "2", "B": "a#b", "C": "x # y", "D": "p #q", "E": "", "F": "#literal"}


def test_unquoted_values_keep_inner_spaces_and_lose_surrounding_ones():
    parsed = parse("A = Fast Car  \nB=\t x\n")
    assert parsed.values == {"A": "Fast Car", "B": "x"}


def test_single_quotes_are_literal_and_double_quotes_expand():
    parsed = parse("N=7\nS='$N ${N} \\$'\nD=\"run $N: \\\"${N}\\\" \\$N \\\\\"\n")
    assert parsed.values["S"] == "$N ${N} \\$"
    assert parsed.values["D"] == 'run 7: "7" $N \\'


def test_quotes_inside_an_unquoted_value_are_kept_and_backslash_escapes_work():
    parsed = parse("A=it's\nB=\\$HOME\\#x\nC=a\\zb\n")
    assert parsed.values == {"A": "it's", "B": "$HOME#x", "C": "a\\zb"}


def test_references_resolve_from_earlier_keys_then_base_then_environment():
    parsed = parse("A=file\nX=$A-$B-$C\nB=late\n",
                   base={"A": "base-a", "B": "base-b", "C": "base-c"}, environ={"A": "e", "B": "e", "C": "env-c"})
    # A: earlier in the file wins; B: only assigned later, so the base value (as in the shell); C: base over env.
    assert parsed.values["X"] == "file-base-b-base-c"
    assert parse("X=$C\n", base={}, environ={"C": "env-c"}).values["X"] == "env-c"


def test_braces_delimit_a_name_and_bare_names_run_to_the_last_name_character():
    parsed = parse("DR_RUN_ID=3\nA=rl-${DR_RUN_ID}x\nB=rl-$DR_RUN_ID.x\nC=rl-$DR_RUN_IDx\n")
    assert parsed.values["A"] == "rl-3x"
    assert parsed.values["B"] == "rl-3.x"
    assert parsed.values["C"] == "rl-"  # $DR_RUN_IDx is another, unset name: "" as in the shell
    assert [str(w) for w in parsed.warnings] == [
        "f.env:4: C: $DR_RUN_IDx is not set in this file above or in the environment, so it expands to ''"]


def test_a_dollar_not_followed_by_a_name_is_literal():
    assert parse("A=5$ $1 $- $\n").values["A"] == "5$ $1 $- $"


def test_unknown_reference_expands_to_empty_with_a_warning_naming_the_base_and_a_later_definition():
    parsed = parse("A=x${LATER}y\nLATER=1\n", base={}, base_label="system.env")
    assert parsed.values["A"] == "xy"
    assert [str(w) for w in parsed.warnings] == [
        "f.env:1: A: $LATER is not set in this file above, in system.env or in the environment, so it expands "
        "to ''; it is set later, on line 2: move that line up"]


def test_self_reference_sees_the_previous_value():
    assert parse("P=a\nP=$P:b\n").values["P"] == "a:b"


def test_a_repeated_key_keeps_the_last_value_and_warns():
    parsed = parse("A=1\nB=2\nA=3\n")
    assert parsed.values["A"] == "3"
    assert parsed.lines["A"] == 3
    assert [str(w) for w in parsed.warnings] == ["f.env:3: A: also set on line 1; this later value wins"]
    assert [entry.line for entry in parsed.entries] == [1, 2, 3]


def test_crlf_line_endings_are_not_part_of_values(tmp_path):
    path = tmp_path / "crlf.env"
    path.write_bytes(b"A=1\r\nB='two'\r\n")
    assert read_env_file(path, environ={}).values == {"A": "1", "B": "two"}


def test_the_process_environment_is_used_when_none_is_given(monkeypatch):
    monkeypatch.setenv("DR_TEST_ENVFILE_VALUE", "from-env")
    assert parse_env_text("A=$DR_TEST_ENVFILE_VALUE\n").values["A"] == "from-env"


# --- envfile: the one-line error for each kind of mistake ----------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("A=1\nDR_WORKERS 2\n", "f.env:2: syntax: expected KEY=value, a # comment or a blank line, got 'DR_WORKERS 2'"),
    ("export FOO\n", "f.env:1: syntax: expected KEY=value, a # comment or a blank line, got 'export FOO'"),
    ("DR-WORKERS=2\n",
     "f.env:1: syntax: expected a KEY of letters, digits and _ that does not start with a digit, got 'DR-WORKERS'"),
    ("1DR=2\n", "f.env:1: syntax: expected a KEY of letters, digits and _ that does not start with a digit, got '1DR'"),
    ("=2\n", "f.env:1: syntax: expected a KEY of letters, digits and _ that does not start with a digit, got ''"),
    ("\nDR_CAR_NAME='Fast Car\n", "f.env:2: DR_CAR_NAME: expected a closing ' quote, got ''Fast Car'"),
    ('DR_CAR_NAME="Fast Car  \n', "f.env:1: DR_CAR_NAME: expected a closing \" quote, got '\"Fast Car'"),
    ('A="a\\"\n', "f.env:1: A: expected a closing \" quote, got '\"a\\\"'"),
    ("A='a'b\n", "f.env:1: A: expected only a # comment after the closing quote, got ''a'b'"),
    ('A="a" b\n', "f.env:1: A: expected only a # comment after the closing quote, got '\"a\" b'"),
    ("A=${1X}\n", "f.env:1: A: expected ${NAME} with NAME of letters, digits and _, got '${1X}'"),
    ("A=${B\n", "f.env:1: A: expected ${NAME} with NAME of letters, digits and _, got '${B'"),
    ("A=${B:-x}\n", "f.env:1: A: expected ${NAME} with NAME of letters, digits and _, got '${B:-x}'"),
])
def test_syntax_errors_are_one_line_with_file_line_subject_expected_and_got(text, message):
    assert error_of(text) == message
    assert "\n" not in message


def test_read_env_file_errors_name_the_file_path(tmp_path):
    path = write(tmp_path / "run.env", "# ok\nBROKEN\n")
    with pytest.raises(ConfigError) as caught:
        read_env_file(path, environ={})
    assert str(caught.value) == f"{path}:2: syntax: expected KEY=value, a # comment or a blank line, got 'BROKEN'"
    assert (caught.value.path, caught.value.line, caught.value.subject) == (str(path), 2, "syntax")


# --- envfile: writing values and rewriting files --------------------------------------------------------------

@pytest.mark.parametrize("value", [
    "", "plain", "rl-deepracer-1", "a b", "0.23,-1;0.46,1", "it's", "$HOME", "${X}", 'say "hi"', "back\\slash",
    "a # not a comment", "#lead", "tab\tin", "both ' and \" and $ and `", "~/x", " padded ",
])
def test_format_value_reads_back_unchanged(value):
    assert parse(f"K={format_value(value)}\n", base={"HOME": "/h", "X": "x"}).values["K"] == value


def test_format_value_leaves_simple_values_bare_and_quotes_what_the_shell_would_split():
    assert format_value("rl-deepracer-1") == "rl-deepracer-1"
    assert format_value("http://minio:9000") == "http://minio:9000"
    assert format_value("0.23,-1;0.46,1") == "'0.23,-1;0.46,1'"


ORIGINAL = """\
# run.env of my experiment
DR_RUN_ID=0

export DR_WORLD_NAME=reinvent_base   # the first track
DR_CAR_NAME='Fast Car'  # quoted
DR_LOCAL_S3_MODEL_PREFIX=rl-1
DR_LOCAL_S3_MODEL_PREFIX=rl-2
# DR_EVAL_RTF=1.0
DR_UPLOAD_S3_PREFIX=$DR_LOCAL_S3_MODEL_PREFIX-up
"""


def test_rewrite_changes_values_in_place_keeping_comments_order_export_and_trailing_comments(tmp_path):
    path = write(tmp_path / "run.env", ORIGINAL)
    backup = rewrite_env_file(path, {
        "DR_WORLD_NAME": "reInvent2019_track", "DR_CAR_NAME": "Slow Car", "DR_LOCAL_S3_MODEL_PREFIX": "rl-3",
        "DR_EVAL_RTF": "1.5", "DR_NEW": "a;b"})
    assert path.read_text() == """\
# run.env of my experiment
DR_RUN_ID=0

export DR_WORLD_NAME=reInvent2019_track   # the first track
DR_CAR_NAME='Slow Car'  # quoted
DR_LOCAL_S3_MODEL_PREFIX=rl-1
DR_LOCAL_S3_MODEL_PREFIX=rl-3
# DR_EVAL_RTF=1.0
DR_UPLOAD_S3_PREFIX=$DR_LOCAL_S3_MODEL_PREFIX-up
DR_EVAL_RTF=1.5
DR_NEW='a;b'
"""
    assert backup == tmp_path / "run.env.bak"
    assert backup.read_text() == ORIGINAL
    # References written in the file still follow the changed key.
    assert read_env_file(path, environ={}).values["DR_UPLOAD_S3_PREFIX"] == "rl-3-up"


def test_rewrite_never_overwrites_a_backup(tmp_path, monkeypatch):
    # One second for all three rewrites: under load the real clock may tick between the second and the third.
    monkeypatch.setattr(envfile.time, "strftime", lambda pattern: "20261206-120000")
    path = write(tmp_path / "run.env", "A=1\n")
    first = rewrite_env_file(path, {"A": "2"})
    second = rewrite_env_file(path, {"A": "3"})
    third = rewrite_env_file(path, {"A": "4"})
    assert first == tmp_path / "run.env.bak"
    assert re.fullmatch(r"run\.env\.\d{8}-\d{6}\.bak", second.name)
    assert third not in (first, second) and third.name.startswith(second.name[:-4])
    assert [p.read_text() for p in (first, second, third)] == ["A=1\n", "A=2\n", "A=3\n"]
    assert path.read_text() == "A=4\n"


def test_rewrite_that_changes_nothing_writes_nothing(tmp_path):
    path = write(tmp_path / "run.env", "A=1  # keep\nB='two'\n")
    assert rewrite_env_file(path, {"A": "1", "B": "two"}) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.env"]


def test_rewrite_refuses_a_file_it_cannot_parse_and_leaves_it_alone(tmp_path):
    path = write(tmp_path / "run.env", "A=1\nnot a setting\n")
    with pytest.raises(ConfigError, match=r"run\.env:2: syntax: expected KEY=value"):
        rewrite_env_file(path, {"A": "2"})
    assert path.read_text() == "A=1\nnot a setting\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.env"]


@pytest.mark.parametrize("updates, message", [
    ({"BAD-KEY": "1"}, "syntax: expected a KEY of letters, digits and _ that does not start with a digit, "
                       "got 'BAD-KEY'"),
    ({"A": "two\nlines"}, "A: expected a value on one line, got 'two\\nlines'"),
])
def test_rewrite_refuses_bad_keys_and_multi_line_values(tmp_path, updates, message):
    path = write(tmp_path / "run.env", "A=1\n")
    with pytest.raises(ConfigError) as caught:
        rewrite_env_file(path, updates)
    assert str(caught.value) == f"{path}: {message}"
    assert path.read_text() == "A=1\n"


def test_rewrite_keeps_mode_and_line_endings_and_follows_symlinks(tmp_path):
    real = tmp_path / "real.env"
    real.write_bytes(b"A=1\r\nB=2")
    real.chmod(0o640)  # not mkstemp's 0600, so a lost mode shows
    link = tmp_path / "run.env"
    link.symlink_to(real)
    rewrite_env_file(link, {"B": "3", "C": "4"})
    assert link.is_symlink()
    assert real.read_bytes() == b"A=1\r\nB=3\r\nC=4\r\n"
    assert real.stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "real.env.bak").read_bytes() == b"A=1\r\nB=2"


def test_rewrite_of_an_empty_value_keeps_its_comment_a_comment(tmp_path):
    path = write(tmp_path / "run.env", "DR_OA_OBJECT_POSITIONS= # none yet\nDR_KINESIS_STREAM_NAME=\n")
    rewrite_env_file(path, {"DR_OA_OBJECT_POSITIONS": "0.5,1", "DR_KINESIS_STREAM_NAME": "stream"})
    assert path.read_text() == "DR_OA_OBJECT_POSITIONS= 0.5,1 # none yet\nDR_KINESIS_STREAM_NAME=stream\n"
    assert read_env_file(path, environ={}).values["DR_OA_OBJECT_POSITIONS"] == "0.5,1"


def test_rewrite_replaces_a_reference_with_the_literal_value(tmp_path):
    path = write(tmp_path / "run.env", "P=rl\nU=$P-1\n")
    rewrite_env_file(path, {"U": "rl-1"})  # equal to what $P-1 gives today, but no longer follows P
    assert path.read_text() == "P=rl\nU=rl-1\n"


def test_rewrite_creates_a_missing_file_without_a_backup(tmp_path):
    path = tmp_path / "new.env"
    assert rewrite_env_file(path, {"A": "x y"}) is None
    assert path.read_text() == "A='x y'\n"
    assert path.stat().st_mode & 0o777 == 0o644


def test_rewrite_is_atomic_when_the_replace_fails(tmp_path, monkeypatch):
    path = write(tmp_path / "run.env", "A=1\n")

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(envfile.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        rewrite_env_file(path, {"A": "2"})
    assert path.read_text() == "A=1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.env", "run.env.bak"]  # no temporary left behind


# --- config: DRfC's own files ---------------------------------------------------------------------------------

def test_drfc_template_files_load_unchanged_with_drfc_values(tmp_path):
    system, run, warnings = load_config(DATA / "template-run.env", DATA / "template-system.env", environ={})
    assert (system.cloud, system.aws_app_region, system.local_s3_bucket, system.upload_s3_bucket) == \
        ("aws", "eu-west-1", "bucket", None)
    assert system.simapp_image == "awsdeepracercommunity/deepracer-simapp:6.0.4-gpu"
    assert (system.workers, system.camera_main_enable, system.camera_kvs_enable, system.gui_enable) == \
        (1, True, True, False)
    assert (system.kinesis_stream_name, system.local_s3_endpoint_url, system.minio_url) == (None, None, None)
    assert (run.run_id, run.world_name, run.race_type, run.car_color) == (0, "reinvent_base", "TIME_TRIAL", "Red")
    assert (run.display_name, run.racer_name, run.eval_opp_display_name) == ("FastCar", "FastCar", "FasterCar")
    assert (run.eval_number_of_trials, run.eval_is_continuous, run.eval_max_resets) == (3, True, 100)
    assert (run.eval_off_track_penalty, run.eval_collision_penalty, run.eval_checkpoint) == (5.0, 5.0, "last")
    assert (run.eval_rtf, run.train_rtf, run.train_max_steps_per_iteration) == (None, None, None)
    assert (run.train_round_robin_advance_dist, run.train_min_eval_trials, run.train_best_model_metric) == \
        (0.05, 5, "progress")
    assert run.local_s3_model_metadata_key == "custom_files/model_metadata.json"
    assert run.local_s3_reward_key == "custom_files/reward_function.py"
    assert run.local_s3_metrics_prefix == "rl-deepracer-sagemaker/metrics"
    assert run.upload_s3_prefix == "rl-deepracer-sagemaker-1"
    assert (run.local_s3_pretrained, run.local_s3_pretrained_checkpoint) == (False, "last")
    assert (run.oa_number_of_obstacles, run.oa_object_positions, run.h2b_bot_car_speed) == (6, (), 0.2)
    assert run.origins["DR_RACE_TYPE"].line == 3
    assert [str(w) for w in warnings] == [
        f"{DATA / 'template-system.env'}:23: DR_DOCKER_STYLE: swarm is accepted, but this tool runs containers as "
        "compose does, on one host"]


def test_a_missing_key_takes_drfcs_default(tmp_path):
    empty = load(tmp_path / "a", "")
    template = load_config(DATA / "template-run.env", write(tmp_path / "s.env", MINIMAL_SYSTEM), environ={})
    assert empty.run.as_dict() == template.run.as_dict()
    assert str(empty.run.origins["DR_WORLD_NAME"]) == f"{tmp_path / 'a' / 'run.env'} (default)"


def test_default_run_env_text_lists_every_key_and_parses_back_to_the_defaults(tmp_path):
    text = default_run_env_text()
    written = re.findall(r"^#?(DR_[A-Z0-9_]+)=", text, flags=re.MULTILINE)
    assert written == list(RUN_KEYS)
    from_template = load(tmp_path / "t", text)
    from_nothing = load(tmp_path / "n", "")
    assert from_template.run.as_dict() == from_nothing.run.as_dict()
    assert from_template.run.raw == from_nothing.run.raw
    assert from_template.warnings == ()
    assert from_template.run.origins["DR_RUN_ID"].line is not None  # really read from the file


def test_defaults_written_as_references_follow_the_keys_they_name(tmp_path):
    run = load(tmp_path, "DR_CAR_NAME=Bolt\nDR_LOCAL_S3_MODEL_PREFIX=rl-7\nDR_LOCAL_S3_CUSTOM_FILES_PREFIX=cf/x\n"
                         "DR_EVAL_OPP_CAR_NAME=Rival\n").run
    assert (run.display_name, run.racer_name, run.eval_opp_racer_name) == ("Bolt", "Bolt", "Rival")
    assert (run.local_s3_metrics_prefix, run.upload_s3_prefix) == ("rl-7/metrics", "rl-7-1")
    assert run.local_s3_hyperparameters_key == "cf/x/hyperparameters.json"


def test_run_env_references_system_env_and_earlier_run_keys(tmp_path):
    run = load(tmp_path, "DR_RUN_ID=4\nDR_LOCAL_S3_MODEL_PREFIX=rl-${DR_RUN_ID}-$DR_LOCAL_S3_BUCKET\n",
               MINIMAL_SYSTEM + "DR_LOCAL_S3_BUCKET=models\n").run
    assert run.local_s3_model_prefix == "rl-4-models"
    assert run.raw["DR_LOCAL_S3_MODEL_PREFIX"] == "rl-4-models"


def test_expansion_order_run_env_then_system_env_then_environment(tmp_path):
    environ = {"DR_CAR_NAME": "env", "DR_WORLD_NAME": "env", "TRACK": "env_track"}
    run = load(tmp_path, "DR_CAR_NAME=run\nDR_DISPLAY_NAME=$DR_CAR_NAME\nDR_RACER_NAME=$DR_WORLD_NAME\n"
                         "DR_WORLD_NAME=$TRACK\n",
               MINIMAL_SYSTEM + "DR_WORLD_NAME=sys_track\n", environ).run
    assert (run.display_name, run.racer_name, run.world_name) == ("run", "sys_track", "env_track")


def test_the_environment_never_sets_a_setting(tmp_path):
    system, run, _ = load(tmp_path, "", environ={"DR_WORKERS": "5", "DR_WORLD_NAME": "Vegas_track"})
    assert (system.workers, run.world_name) == (1, "reinvent_base")


@pytest.mark.parametrize("text, value, raw", [
    ("True", True, "True"), ("true", True, "True"), ("1", True, "True"), ("yes", True, "True"),
    ("YES", True, "True"), ("False", False, "False"), ("false", False, "False"), ("0", False, "False"),
    ("no", False, "False"),
])
def test_booleans_accept_drfc_spellings_and_are_normalised(tmp_path, text, value, raw):
    run = load(tmp_path, f"DR_EVAL_SAVE_MP4={text}\n").run
    assert run.eval_save_mp4 is value
    assert run.raw["DR_EVAL_SAVE_MP4"] == raw


def test_choices_ignore_case_and_are_normalised(tmp_path):
    run = load(tmp_path, "DR_RACE_TYPE=object_avoidance\nDR_CAR_COLOR=purple\nDR_EVAL_CHECKPOINT=BEST\n").run
    assert (run.race_type, run.car_color, run.eval_checkpoint) == ("OBJECT_AVOIDANCE", "Purple", "best")
    assert load(tmp_path / "f1", "DR_CAR_COLOR=f1_car_ff00aa\n").run.car_color == "f1_car_ff00aa"


def test_typed_values(tmp_path):
    run = load(tmp_path, "DR_OA_OBJECT_POSITIONS=\"0.23,-1;0.46,1\"\nDR_LOCAL_S3_PRETRAINED_CHECKPOINT=Best\n"
                         "DR_TRAIN_MAX_STEPS_PER_ITERATION=8000\nDR_EVAL_RTF=1.5\nDR_H2B_BOT_CAR_SPEED=1\n").run
    assert run.oa_object_positions == ((0.23, -1), (0.46, 1))
    assert run.raw["DR_OA_OBJECT_POSITIONS"] == "0.23,-1;0.46,1"
    assert (run.local_s3_pretrained_checkpoint, run.train_max_steps_per_iteration) == ("best", 8000)
    assert (run.eval_rtf, run.h2b_bot_car_speed, run.raw["DR_H2B_BOT_CAR_SPEED"]) == (1.5, 1.0, "1.0")


def test_drfc_users_trailing_comments_work(tmp_path):
    system, _, _ = load(tmp_path, "", MINIMAL_SYSTEM + "DR_WORKERS=3   # Number of parallel simulations!\n")
    assert system.workers == 3


# --- config: one-line errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("line, message", [
    ("DR_RACE_TYPE=TIME_TRAIL", "DR_RACE_TYPE: expected one of TIME_TRIAL, OBJECT_AVOIDANCE, HEAD_TO_BOT "
                                "(or HEAD_TO_MODEL to evaluate), got 'TIME_TRAIL'"),
    ("DR_CAR_COLOR=Green", "DR_CAR_COLOR: expected one of Black, Grey, Blue, Red, Orange, White, Purple "
                           "(or f1_car_<hex>), got 'Green'"),
    ("DR_RUN_ID=-1", "DR_RUN_ID: expected a whole number of at least 0, got '-1'"),
    ("DR_RUN_ID=one", "DR_RUN_ID: expected a whole number of at least 0, got 'one'"),
    ("DR_EVAL_SAVE_MP4=maybe", "DR_EVAL_SAVE_MP4: expected True or False (also true/false, yes/no, 1/0), got 'maybe'"),
    ("DR_TRAIN_ROUND_ROBIN_ADVANCE_DIST=1.5",
     "DR_TRAIN_ROUND_ROBIN_ADVANCE_DIST: expected a number from 0 to 1, got '1.5'"),
    ("DR_EVAL_OFF_TRACK_PENALTY=nan", "DR_EVAL_OFF_TRACK_PENALTY: expected a number of at least 0, got 'nan'"),
    ("DR_EVAL_RTF=0", "DR_EVAL_RTF: expected a number above 0, got '0'"),
    ("DR_EVAL_CHECKPOINT=3", "DR_EVAL_CHECKPOINT: expected one of best, last, got '3'"),
    ("DR_LOCAL_S3_PRETRAINED_CHECKPOINT=first",
     "DR_LOCAL_S3_PRETRAINED_CHECKPOINT: expected best or last (the simulator reads anything else as last); to "
     "start from checkpoint N: `deepracer models export rl-sagemaker-pretrained --checkpoint N --to "
     "s3://bucket/rl-sagemaker-pretrained-checkpoint-N`, then DR_LOCAL_S3_PRETRAINED_PREFIX=rl-sagemaker-pretrained-"
     "checkpoint-N and DR_LOCAL_S3_PRETRAINED_CHECKPOINT=last, got 'first'"),
    ("DR_TRAIN_BEST_MODEL_METRIC=speed",
     "DR_TRAIN_BEST_MODEL_METRIC: expected one of progress, reward, laptime, got 'speed'"),
    ("DR_LOCAL_S3_MODEL_PREFIX=/rl-1/", "DR_LOCAL_S3_MODEL_PREFIX: expected an S3 prefix of letters, digits and "
                                        "!_.*'()- parts joined by single /, no / at either end, got '/rl-1/'"),
    ("DR_LOCAL_S3_TRAINING_PARAMS_FILE=params.v2.yaml", "DR_LOCAL_S3_TRAINING_PARAMS_FILE: expected a file name "
                                                        "such as training_params.yaml (one dot, .yaml or .yml), "
                                                        "got 'params.v2.yaml'"),
    ("DR_OA_OBJECT_POSITIONS=0.2,0", "DR_OA_OBJECT_POSITIONS: expected <lap fraction 0-1>,<lane 1 or -1> pairs "
                                     "joined by ; such as 0.23,-1;0.46,1, got '0.2,0'"),
    ("DR_OA_OBJECT_POSITIONS=0.2;0.4,1", "DR_OA_OBJECT_POSITIONS: expected <lap fraction 0-1>,<lane 1 or -1> pairs "
                                         "joined by ; such as 0.23,-1;0.46,1, got '0.2;0.4,1'"),
    ("DR_WORLD_NAME=", "DR_WORLD_NAME: expected a name of letters, digits and _.-, got ''"),
    ("DR_CAR_NAME=  ", "DR_CAR_NAME: expected a non-empty value, got ''"),
])
def test_a_bad_run_value_is_one_line_naming_file_line_key_and_expected(tmp_path, line, message):
    run_env = tmp_path / "run.env"
    assert load_error(tmp_path, f"# my run\n\n{line}\n") == f"{run_env}:3: {message}"


@pytest.mark.parametrize("system, message", [
    ("DR_CLOUD=gcp\nDR_SIMAPP_VERSION=6.0.4-gpu\n",
     ":1: DR_CLOUD: expected one of aws, azure, local, remote, got 'gcp'"),
    ("DR_CLOUD=<CLOUD_REPLACE>\nDR_SIMAPP_VERSION=6.0.4-gpu\n",
     ":1: DR_CLOUD: expected one of aws, azure, local, remote, got '<CLOUD_REPLACE>'"),
    ("DR_SIMAPP_VERSION=6.0.4-gpu\n", ": DR_CLOUD: expected one of aws, azure, local, remote, got nothing"),
    ("DR_CLOUD=aws\n", ": DR_SIMAPP_VERSION: expected an image tag such as 6.0.4-gpu, got nothing"),
    # The stack's documented maximum (README: 1-8 workers), one constant for stack and host (issue 10).
    (MINIMAL_SYSTEM + "DR_WORKERS=9\n", ":3: DR_WORKERS: expected a whole number from 1 to 8, got '9'"),
    (MINIMAL_SYSTEM + "DR_WORKERS=0\n", ":3: DR_WORKERS: expected a whole number from 1 to 8, got '0'"),
    (MINIMAL_SYSTEM + "DR_UPLOAD_S3_BUCKET=My_Bucket\n",
     ":3: DR_UPLOAD_S3_BUCKET: expected an S3 bucket name (3-63 of a-z 0-9 . -), got 'My_Bucket'"),
    (MINIMAL_SYSTEM + "DR_MINIO_URL=minio:9000\n",
     ":3: DR_MINIO_URL: expected a URL such as http://minio:9000, got 'minio:9000'"),
    ("DR_CLOUD=remote\nDR_SIMAPP_VERSION=6.0.4-gpu\n", ": DR_REMOTE_MINIO_URL: expected the URL of the S3 server "
                                                      "(e.g. http://mynas:9000) when DR_CLOUD=remote, got nothing"),
])
def test_a_bad_or_missing_system_value_names_system_env(tmp_path, system, message):
    assert load_error(tmp_path, "", system) == f"{tmp_path / 'system.env'}{message}"


def test_a_syntax_error_in_run_env_is_reported_by_load_config(tmp_path):
    assert load_error(tmp_path, "DR_RUN_ID=1\nDR_CAR_NAME='Fast\n") == \
        f"{tmp_path / 'run.env'}:2: DR_CAR_NAME: expected a closing ' quote, got ''Fast'"


def test_a_checkpoint_number_is_refused_with_how_to_start_from_that_checkpoint(tmp_path):
    # simapp 6.0.4 reads anything but `best` as `last` (bundle/markov/training_worker.py): 12 would silently
    # train from the last checkpoint.
    message = load_error(tmp_path, "DR_LOCAL_S3_PRETRAINED=True\nDR_LOCAL_S3_PRETRAINED_PREFIX=rl-base-3\n"
                                   "DR_LOCAL_S3_PRETRAINED_CHECKPOINT=12\n",
                         MINIMAL_SYSTEM + "DR_LOCAL_S3_BUCKET=my-models\n")
    assert message == (f"{tmp_path / 'run.env'}:3: DR_LOCAL_S3_PRETRAINED_CHECKPOINT: expected best or last (the "
                       "simulator reads anything else as last); to start from checkpoint 12: `deepracer models "
                       "export rl-base-3 --checkpoint 12 --to s3://my-models/rl-base-3-checkpoint-12`, then "
                       "DR_LOCAL_S3_PRETRAINED_PREFIX=rl-base-3-checkpoint-12 and "
                       "DR_LOCAL_S3_PRETRAINED_CHECKPOINT=last, got '12'")


def test_every_mistake_of_both_files_is_reported_in_one_run(tmp_path):
    run_env, system_env = tmp_path / "run.env", tmp_path / "system.env"
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, "DR_RUN_ID=abc\nDR_CAR_NAME='Fast\nDR_RACE_TYPE=TIME_TRAIL\nfoo bar\n"
                       "DR_LOCAL_S3_MODEL_PREFIX=/bad/\n",
             MINIMAL_SYSTEM + "DR_WORKERS=20\n")
    assert str(caught.value).splitlines() == [
        f"{system_env}:3: DR_WORKERS: expected a whole number from 1 to 8, got '20'",
        f"{run_env}:1: DR_RUN_ID: expected a whole number of at least 0, got 'abc'",
        f"{run_env}:2: DR_CAR_NAME: expected a closing ' quote, got ''Fast'",
        f"{run_env}:3: DR_RACE_TYPE: expected one of TIME_TRIAL, OBJECT_AVOIDANCE, HEAD_TO_BOT (or HEAD_TO_MODEL "
        "to evaluate), got 'TIME_TRAIL'",
        f"{run_env}:4: syntax: expected KEY=value, a # comment or a blank line, got 'foo bar'",
        f"{run_env}:5: DR_LOCAL_S3_MODEL_PREFIX: expected an S3 prefix of letters, digits and !_.*'()- parts joined "
        "by single /, no / at either end, got '/bad/'",
    ]  # and nothing about the keys whose defaults name the bad prefix (DR_LOCAL_S3_METRICS_PREFIX ...)
    assert len(caught.value.errors) == 6 and caught.value.subject == "DR_WORKERS"


def test_every_mistake_of_a_worker_file_is_reported(tmp_path):
    write(tmp_path / "worker-2.env", "DR_WORLD_NAME reInvent2019_track\nDR_CAR_COLOR=Pink\n")
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, "DR_TRAIN_MULTI_CONFIG=True\n", MINIMAL_SYSTEM + "DR_WORKERS=2\n")
    worker = tmp_path / "worker-2.env"
    assert [line.split(": ")[:2] for line in str(caught.value).splitlines()] == [
        [f"{worker}:1", "syntax"], [f"{worker}:2", "DR_CAR_COLOR"]]


def test_a_missing_run_env_given_relative_names_the_absolute_path_looked_at(tmp_path, monkeypatch):
    system_env = write(tmp_path / "system.env", MINIMAL_SYSTEM)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_config("run.env", system_env, environ={})
    assert str(caught.value).startswith(f"{tmp_path / 'run.env'}: file: expected an existing file")


def test_missing_files_name_the_variable_that_moves_them(tmp_path):
    system_env = write(tmp_path / "system.env", MINIMAL_SYSTEM)
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope" / "run.env", system_env, environ={})
    assert str(caught.value) == (f"{tmp_path / 'nope' / 'run.env'}: file: expected an existing file "
                                 "(or DR_RUN_ENV naming another), got nothing")
    with pytest.raises(ConfigError, match=r"system\.env: file: expected an existing file \(or DR_SYSTEM_ENV"):
        load_config(tmp_path / "run.env", tmp_path / "absent" / "system.env", environ={})


def test_a_system_key_in_run_env_overrides_with_a_warning(tmp_path):
    system, _, warnings = load(tmp_path, "DR_WORKERS=3\nDR_LOCAL_S3_BUCKET=bucket\n",
                               MINIMAL_SYSTEM + "DR_WORKERS=2\nDR_LOCAL_S3_BUCKET=bucket\n")
    assert system.workers == 3
    assert str(system.origins["DR_WORKERS"]) == f"{tmp_path / 'run.env'}:1"
    assert [str(w) for w in warnings] == [
        f"{tmp_path / 'run.env'}:1: DR_WORKERS: overrides '2' from {tmp_path / 'system.env'}"]


def test_error_helper_points_later_checks_at_the_line(tmp_path):
    run = load(tmp_path, "\nDR_WORLD_NAME=atlantis\n").run
    assert str(run.error("DR_WORLD_NAME", "a track of simapp 6.0.4")) == \
        f"{tmp_path / 'run.env'}:2: DR_WORLD_NAME: expected a track of simapp 6.0.4, got 'atlantis'"
    assert str(run.error("DR_CAR_NAME", "a short name")) == \
        f"{tmp_path / 'run.env'}: DR_CAR_NAME: expected a short name, got 'FastCar'"
    assert str(run.error("DR_TRAIN_RTF", "a factor when DR_TRAIN_MAX_STEPS_PER_ITERATION is set")) == \
        f"{tmp_path / 'run.env'}: DR_TRAIN_RTF: expected a factor when DR_TRAIN_MAX_STEPS_PER_ITERATION is set, " \
        "got nothing"


def test_head_to_model_loads_for_evaluation_but_not_for_training(tmp_path):
    run = load(tmp_path, "DR_RUN_ID=0\nDR_RACE_TYPE=HEAD_TO_MODEL\n").run
    assert run.race_type == "HEAD_TO_MODEL"
    with pytest.raises(ConfigError) as caught:
        run.check_training()
    assert str(caught.value) == (f"{tmp_path / 'run.env'}:2: DR_RACE_TYPE: expected one of TIME_TRIAL, "
                                 "OBJECT_AVOIDANCE, HEAD_TO_BOT to train (HEAD_TO_MODEL is for evaluation only), "
                                 "got 'HEAD_TO_MODEL'")
    load(tmp_path / "tt", "DR_RACE_TYPE=HEAD_TO_BOT\n").run.check_training()  # no error


# --- config: warnings -----------------------------------------------------------------------------------------

def test_unknown_keys_are_warnings_with_a_close_match_and_stay_in_raw(tmp_path):
    system, run, warnings = load(tmp_path, "DR_RACE_TYP=HEAD_TO_BOT\nDR_NOTHING_LIKE_IT=1\nDR_DIR=/x\n"
                                           "DR_CHANGE_START_POSITION=False\n",
                                 MINIMAL_SYSTEM + "DR_SAGEMAKER_IMAGE=5.0.0\n")
    assert run.race_type == "TIME_TRIAL"
    assert run.raw["DR_RACE_TYP"] == "HEAD_TO_BOT" and system.raw["DR_SAGEMAKER_IMAGE"] == "5.0.0"
    run_env, system_env = tmp_path / "run.env", tmp_path / "system.env"
    assert [str(w) for w in warnings] == [
        f"{system_env}:3: DR_SAGEMAKER_IMAGE: is an old DRfC name, ignored: use DR_SIMAPP_SOURCE and "
        "DR_SIMAPP_VERSION (one image since simapp 5.3)",
        f"{run_env}:1: DR_RACE_TYP: is not a setting this tool reads; ignored (did you mean DR_RACE_TYPE?)",
        f"{run_env}:2: DR_NOTHING_LIKE_IT: is not a setting this tool reads; ignored",
        f"{run_env}:3: DR_DIR: is worked out by DRfC's activate.sh, not read from a file; ignored",
        f"{run_env}:4: DR_CHANGE_START_POSITION: is an old DRfC name, ignored: use DR_TRAIN_CHANGE_START_POSITION",
    ]


def test_undefined_reference_warning_reaches_load_config(tmp_path):
    _, run, warnings = load(tmp_path, "DR_LOCAL_S3_MODEL_PREFIX=rl-$DR_MISSING-1\n")
    assert run.local_s3_model_prefix == "rl--1"
    assert [str(w) for w in warnings] == [
        f"{tmp_path / 'run.env'}:1: DR_LOCAL_S3_MODEL_PREFIX: $DR_MISSING is not set in this file above, in "
        f"{tmp_path / 'system.env'} or in the environment, so it expands to ''"]


def test_compose_style_is_quiet(tmp_path):
    assert load(tmp_path, "", MINIMAL_SYSTEM + "DR_DOCKER_STYLE=compose\n").warnings == ()


# --- config: system specifics ---------------------------------------------------------------------------------

@pytest.mark.parametrize("cloud, extra, profile, endpoint, minio", [
    ("aws", "", "default", None, None),
    ("azure", "", "minio", "http://localhost:9000", "http://minio:9000"),
    ("local", "", "minio", "http://localhost:9000", "http://minio:9000"),
    ("remote", "DR_REMOTE_MINIO_URL=http://nas:9000\n", "minio", "http://nas:9000", "http://nas:9000"),
    ("azure", "DR_MINIO_URL=http://s3.internal:9000\nDR_LOCAL_S3_PROFILE=mine\n", "mine", "http://localhost:9000",
     "http://s3.internal:9000"),
])
def test_profile_and_minio_endpoints_follow_the_cloud_like_drfc(tmp_path, cloud, extra, profile, endpoint, minio):
    system = load(tmp_path, "", f"DR_CLOUD={cloud}\nDR_SIMAPP_VERSION=6.0.4-cpu\n{extra}").system
    assert (system.local_s3_profile, system.local_s3_endpoint_url, system.minio_url) == (profile, endpoint, minio)


def test_upload_bucket_not_defined_means_none(tmp_path):
    assert load(tmp_path / "a", "", MINIMAL_SYSTEM + "DR_UPLOAD_S3_BUCKET=not-defined\n").system.upload_s3_bucket \
        is None
    assert load(tmp_path / "b", "", MINIMAL_SYSTEM + "DR_UPLOAD_S3_BUCKET=my-models\n").system.upload_s3_bucket == \
        "my-models"


def test_the_minio_secret_stays_out_of_repr(tmp_path):
    system = load(tmp_path, "", MINIMAL_SYSTEM + "DR_LOCAL_ACCESS_KEY_ID=key\nDR_LOCAL_SECRET_ACCESS_KEY=s3cr3t\n"
                  ).system
    assert system.local_secret_access_key == "s3cr3t"
    assert "s3cr3t" not in repr(system)
    assert "local_access_key_id='key'" in repr(system)


# --- config: per-worker overrides -----------------------------------------------------------------------------

MULTI_SYSTEM = MINIMAL_SYSTEM + "DR_WORKERS=3\n"


def test_worker_files_override_run_env_per_worker(tmp_path):
    write(tmp_path / "worker-2.env", "DR_WORLD_NAME=reInvent2019_track\nDR_CAR_COLOR=Blue\n"
                                     "DR_TRAIN_ROUND_ROBIN_ADVANCE_DIST=0.1\nDR_RACE_TYPE=OBJECT_AVOIDANCE\n")
    write(tmp_path / "worker-3.env", "DR_CAR_BODY_SHELL_TYPE=f1_2021\nDR_OA_OBJECT_POSITIONS=0.5,1\n")
    run = load(tmp_path, "DR_TRAIN_MULTI_CONFIG=True\nDR_WORLD_NAME=Vegas_track\n", MULTI_SYSTEM).run
    one, two, three = run.for_worker(1), run.for_worker(2), run.for_worker(3)
    assert one is run
    assert (two.world_name, two.car_color, two.train_round_robin_advance_dist, two.race_type) == \
        ("reInvent2019_track", "Blue", 0.1, "OBJECT_AVOIDANCE")
    assert two.car_body_shell_type == "deepracer"
    assert two.raw["DR_WORLD_NAME"] == "reInvent2019_track"
    assert str(two.origins["DR_CAR_COLOR"]) == f"{tmp_path / 'worker-2.env'}:2"
    # Each worker starts from run.env: worker 2's track does not leak into worker 3 (it does in DRfC).
    assert (three.world_name, three.car_color, three.car_body_shell_type) == ("Vegas_track", "Red", "f1_2021")
    assert three.oa_object_positions == ((0.5, 1),)
    assert run.world_name == "Vegas_track" and two.run_id == run.run_id


def test_worker_files_may_reference_run_and_system_values(tmp_path):
    write(tmp_path / "worker-2.env", "DR_WORLD_NAME=${DR_WORLD_NAME}_ccw\n")
    run = load(tmp_path, "DR_TRAIN_MULTI_CONFIG=True\nDR_WORLD_NAME=2022_reinvent_champ\n",
               MINIMAL_SYSTEM + "DR_WORKERS=2\n").run
    assert run.for_worker(2).world_name == "2022_reinvent_champ_ccw"


def test_only_per_worker_keys_count_in_worker_files(tmp_path):
    write(tmp_path / "worker-2.env", "DR_CAR_NAME=Other\nDR_WORKERS=1\nDR_WORLD_NAM=x\n")
    write(tmp_path / "worker-3.env", "")
    _, run, warnings = load(tmp_path, "DR_TRAIN_MULTI_CONFIG=True\n", MULTI_SYSTEM)
    assert run.for_worker(2).car_name == "FastCar"
    worker = tmp_path / "worker-2.env"
    assert [str(w) for w in warnings] == [
        f"{worker}:1: DR_CAR_NAME: cannot differ per worker; ignored (set it in run.env)",
        f"{worker}:2: DR_WORKERS: cannot differ per worker; ignored (set it in run.env)",
        f"{worker}:3: DR_WORLD_NAM: is not a setting this tool reads; ignored (did you mean DR_WORLD_NAME?)",
    ]


def test_worker_keys_are_drfcs_per_worker_set():
    assert set(WORKER_KEYS) == {
        "DR_WORLD_NAME", "DR_RACE_TYPE", "DR_CAR_COLOR", "DR_CAR_BODY_SHELL_TYPE", "DR_ENABLE_DOMAIN_RANDOMIZATION",
        "DR_TRAIN_CHANGE_START_POSITION", "DR_TRAIN_REVERSE_DIRECTION", "DR_TRAIN_ALTERNATE_DRIVING_DIRECTION",
        "DR_TRAIN_ROUND_ROBIN_ADVANCE_DIST", "DR_TRAIN_START_POSITION_OFFSET",
        *(key for key in RUN_KEYS if key.startswith(("DR_OA_", "DR_H2B_")))}


def test_a_missing_worker_file_with_multi_config_is_an_error(tmp_path):
    write(tmp_path / "worker-2.env", "")
    assert load_error(tmp_path, "DR_TRAIN_MULTI_CONFIG=True\n", MULTI_SYSTEM) == (
        f"{tmp_path / 'worker-3.env'}: file: expected an existing file (DR_TRAIN_MULTI_CONFIG=True and "
        "DR_WORKERS=3 read worker-2.env to worker-3.env beside run.env), got nothing")


def test_a_bad_worker_value_names_the_worker_file_and_line(tmp_path):
    write(tmp_path / "worker-2.env", "# worker two\nDR_CAR_COLOR=Pink\n")
    assert load_error(tmp_path, "DR_TRAIN_MULTI_CONFIG=True\n", MINIMAL_SYSTEM + "DR_WORKERS=2\n") == (
        f"{tmp_path / 'worker-2.env'}:2: DR_CAR_COLOR: expected one of Black, Grey, Blue, Red, Orange, White, "
        "Purple (or f1_car_<hex>), got 'Pink'")


def test_workers_cannot_race_head_to_model(tmp_path):
    write(tmp_path / "worker-2.env", "DR_RACE_TYPE=HEAD_TO_MODEL\n")
    assert load_error(tmp_path, "DR_TRAIN_MULTI_CONFIG=True\n", MINIMAL_SYSTEM + "DR_WORKERS=2\n") == (
        f"{tmp_path / 'worker-2.env'}:1: DR_RACE_TYPE: expected one of TIME_TRIAL, OBJECT_AVOIDANCE, HEAD_TO_BOT "
        "(workers train; HEAD_TO_MODEL is for evaluation only), got 'HEAD_TO_MODEL'")


@pytest.mark.parametrize("run, workers, why", [
    ("DR_TRAIN_MULTI_CONFIG=False\n", 3, "DR_TRAIN_MULTI_CONFIG is False"),
    ("DR_TRAIN_MULTI_CONFIG=True\n", 1, "DR_WORKERS is 1"),
])
def test_worker_files_not_read_are_reported(tmp_path, run, workers, why):
    write(tmp_path / "worker-2.env", "DR_WORLD_NAME=elsewhere\n")
    _, config, warnings = load(tmp_path, run, MINIMAL_SYSTEM + f"DR_WORKERS={workers}\n")
    assert config.for_worker(2).world_name == "reinvent_base"
    assert [str(w) for w in warnings] == [f"{tmp_path / 'worker-2.env'}: file: not read: {why}"]


def test_worker_numbers_start_at_one(tmp_path):
    with pytest.raises(ValueError, match="worker numbers start at 1, got 0"):
        load(tmp_path, "").run.for_worker(0)


# --- config: locations and structure --------------------------------------------------------------------------

def test_default_locations_and_their_overrides(tmp_path):
    assert default_system_env({}) == Path("/etc/deepracer/system.env")
    assert default_system_env({"DR_SYSTEM_ENV": "/x/system.env"}) == Path("/x/system.env")
    assert default_run_env({}) == Path("~/deepracer/run.env").expanduser()
    assert default_run_env({}, experiment="vegas") == Path("~/deepracer/experiments/vegas/run.env").expanduser()
    assert default_run_env({"DR_RUN_ENV": "/y/run.env"}, experiment="vegas") == Path("/y/run.env")


def test_load_config_finds_files_through_the_environment(tmp_path):
    write(tmp_path / "etc" / "system.env", MINIMAL_SYSTEM + "DR_WORKERS=2\n")
    write(tmp_path / "work" / "run.env", "DR_RUN_ID=9\n")
    system, run, _ = load_config(environ={"DR_SYSTEM_ENV": str(tmp_path / "etc" / "system.env"),
                                          "DR_RUN_ENV": str(tmp_path / "work" / "run.env")})
    assert (system.workers, run.run_id) == (2, 9)


def test_an_experiment_name_in_system_env_selects_its_run_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    write(tmp_path / "deepracer" / "experiments" / "vegas" / "run.env", "DR_WORLD_NAME=Vegas_track\n")
    system_env = write(tmp_path / "system.env", MINIMAL_SYSTEM + "DR_EXPERIMENT_NAME=vegas\n")
    assert load_config(None, system_env, environ={}).run.world_name == "Vegas_track"
    write(tmp_path / "deepracer" / "run.env", "")
    bad = write(tmp_path / "bad.env", MINIMAL_SYSTEM + "DR_EXPERIMENT_NAME=../vegas\n")
    with pytest.raises(ConfigError, match=r"bad\.env:3: DR_EXPERIMENT_NAME: expected a name of letters, digits"):
        load_config(None, bad, environ={})


@pytest.mark.parametrize("cls", [SystemConfig, RunConfig])
def test_attributes_are_named_after_their_keys(cls):
    for f in dataclasses.fields(cls):
        if "setting" in f.metadata:
            assert f.name == f.metadata["setting"].key[len("DR_"):].lower()
    assert not set(SYSTEM_KEYS) & set(RUN_KEYS)


def test_configs_are_frozen(tmp_path):
    run = load(tmp_path, "").run
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.world_name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        run.raw["DR_WORLD_NAME"] = "x"  # type: ignore[index]


def test_the_template_fixture_keeps_drfcs_key_order():
    # Guard against someone "fixing" the fixture: it must stay DRfC's key order, with its commented keys.
    keys = re.findall(r"^#?(DR_[A-Z0-9_]+)=", (DATA / "template-run.env").read_text(), flags=re.MULTILINE)
    ours = ("DR_EVAL_OPP_S3_METRICS_PREFIX", "DR_TRAIN_MAX_MINUTES")  # keys DRfC's template does not have
    assert keys == [key for key in RUN_KEYS if key not in ours]
