"""The `models` commands' output: listing, details, export, car package, download, DRoA import.

The work lives in session.models.library, session.models.export and session.models.droa; this module turns results
into text.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from session.core import console


def _gib(size: int) -> str:
    return f"{size / 1024 ** 2:.1f} MiB" if size < 1024 ** 3 else f"{size / 1024 ** 3:.2f} GiB"


def models(args: argparse.Namespace, loaded, storage) -> int:
    """models list | show | export | car-package | download | import-droa"""
    from session.models import export as packaging
    from session.models import library

    action = args.models_command
    if action == "restore":
        from session.storage.keeper import mirror_for, require_mirror
        from session.storage.mirror_sync import restore_prefix_from_mirror

        require_mirror(loaded.system, "models restore")
        print(restore_prefix_from_mirror(mirror_for(loaded.system), storage, args.prefix,
                                         overwrite=args.overwrite).summary())
        return 0
    if action == "import-droa":
        return import_droa(args, loaded, storage)
    if action == "list":
        found = library.list_models(storage)
        if args.json:
            console.emit_json([summary.to_dict() for summary in found])
            return 0
        if not found:
            print(f"no models in {storage.url()}")
            return 0
        width = max(len("PREFIX"), *(len(s.prefix) for s in found))
        print(f"{'PREFIX':{width}} {'ITER':>4} {'LAST':>5} {'BEST':>5} {'REWARD':>12} {'LAP':>12} {'SIZE':>10}"
              "  UPDATED")
        for s in found:
            reward = f"{s.best_by_reward.number}:{s.best_by_reward.value:.0f}" if s.best_by_reward else "-"
            lap = f"{s.best_by_lap_time.number}:{s.best_by_lap_time.value:.2f}s" if s.best_by_lap_time else "-"
            updated = s.updated.strftime("%Y-%m-%d %H:%M") if s.updated else "-"
            last = s.last.number if s.last else "-"
            best = s.best.number if s.best else "-"
            print(f"{s.prefix:{width}} {s.iterations:>4} {last:>5} {best:>5} {reward:>12} {lap:>12} "
                  f"{_gib(s.size):>10}  {updated}")
        return 0
    if action == "show":
        details = library.show_model(storage, args.prefix)
        if args.json:
            console.emit_json(details.to_dict())
            return 0
        s = details.summary
        print(f"model            {s.url} ({s.layout} layout)")
        print(f"iterations       {s.iterations} ({s.episodes} training episodes)")
        print(f"algorithm        {details.training_algorithm}, {details.neural_network}")
        print(f"sensors          {', '.join(details.sensors) or '-'}")
        print(f"action space     {details.action_space_type}: {json.dumps(details.action_space)}")
        print(f"reward function  sha256 {details.reward_function_sha256 or '-'}")
        for key, value in details.training.items():
            print(f"{key:16} {value}")
        print("hyperparameters  " + json.dumps(details.hyperparameters, sort_keys=True))
        for row in details.checkpoints:
            marks = ", ".join(m for m, on in (("last", row.last), ("best", row.best),
                                              ("incomplete", not row.complete), ("no .pb", not row.frozen_graph)) if on)
            metric = f" {row.checkpoint.metric:.1f}" if row.checkpoint.metric is not None else ""
            print(f"checkpoint       {row.checkpoint.name}{metric}{f'  ({marks})' if marks else ''}")
        for note in details.notes:
            print(f"note: {note}")
        return 0
    if action == "export":
        result = packaging.export_run_model(storage, loaded.system, loaded.run, args.prefix, args.checkpoint,
                                            args.to, location=args.location, overwrite=args.overwrite)
        if args.json:
            console.emit_json(result.to_dict())
        else:
            for line in result.lines():
                print(line)
        return 1 if any(p.is_error for p in result.problems) else 0
    if action == "car-package":
        choice = library.parse_choice(args.checkpoint)
        out = Path(args.out) if args.out else None
        package = packaging.car_package(storage, args.prefix, choice, out=out or Path(
            f"{args.prefix.strip('/').replace('/', '-')}-{args.checkpoint}.tar.gz"))
        print(f"wrote {package.path} ({package.checkpoint.name}, {len(package.data)} bytes, sha256 {package.sha256})")
        return 0
    if action == "download":
        bucket, _ = packaging.parse_s3_url(args.source)
        source = storage if bucket == storage.bucket else packaging.bucket_storage(loaded.system, bucket)
        try:
            result = packaging.download_model(args.source, source, storage, args.prefix, overwrite=args.overwrite)
        finally:
            if source is not storage:
                source.close()
        print(f"downloaded {result.source} to {result.target}: {len(result.files)} files, {_gib(result.bytes)}, "
              "checksums verified")
        for note in result.notes:
            print(f"note: {note}")
        print(f"to train from it: DR_LOCAL_S3_PRETRAINED=True, DR_LOCAL_S3_PRETRAINED_PREFIX={args.prefix.strip('/')}")
        return 0
    raise AssertionError(action)


def import_droa(args: argparse.Namespace, loaded, storage) -> int:
    """Export one checkpoint to a scratch folder and push it into a DeepRacer-on-AWS install."""
    import tempfile

    from session.models import droa, library
    from session.models import export as packaging

    url = args.url or loaded.system.droa_url
    user = args.username or loaded.system.droa_username
    if not url:
        raise droa.DroaError("no DRoA URL: pass --url or set DR_DROA_URL in system.env")
    if not user:
        raise droa.DroaError("no DRoA username: pass --username or set DR_DROA_USERNAME in system.env")
    name = args.name or droa.droa_model_name(args.prefix)
    droa.check_model_name(name, args.description)
    client = droa.DroaClient(url, user, lambda: droa.read_password(user))
    client.config  # noqa: B018 - reading it is the check: a wrong URL fails before the export and before the password prompt
    with tempfile.TemporaryDirectory(prefix="droa-import-") as folder:
        result = packaging.export_model(storage, args.prefix, library.parse_choice(args.checkpoint), Path(folder))
        errors = [p for p in result.problems if p.is_error]
        if errors:
            raise library.ModelError(f"the export of {args.prefix} is not importable: {errors[0]}")
        model_id = client.import_model(folder, name, args.description, report=print)
    if args.wait:
        client.wait_for_import(model_id, timeout=args.timeout, report=print)
    print(f"{name}: DRoA model {model_id} ({client.url})")
    return 0
