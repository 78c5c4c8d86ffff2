"""The shell lines `pulumi up` runs on the deployer's machine (pulumi-command local commands), free of paths.

A local command runs its `create` line again whenever any of its inputs changes (`create`, `dir`,
`environment` included), and Pulumi keeps those inputs in the stack's state. A line that named this
checkout's absolute path or its virtualenv's interpreter would therefore run again after the checkout or the
virtualenv moved: an upload repeated for nothing, a readiness wait repeated on a host that has long been ready.
So the lines name the project's own modules (`python -m infra.wait_ready`), the interpreter is found on PATH
with the project's virtualenv first, and the directory they run in is the checkout as seen from the directory
Pulumi runs the program in.

Pulumi runs the program in the project's `main` directory (infra/, see Pulumi.yaml) and starts provider
plugins, pulumi-command's included, in that same directory (pkg/engine: GetPwdMain; the plugin context's Pwd),
so a `dir` relative to the program's working directory is where the command runs.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Optional

import pulumi


def checkout_dir(repo_root: Path, cwd: Optional[Path] = None) -> str:
    """The checkout as a path relative to the working directory Pulumi gives the program and the providers."""
    return Path(os.path.relpath(repo_root, cwd or Path.cwd())).as_posix()


def interpreter_dir(repo_root: Path, executable: Optional[str] = None) -> str:
    """The directory of the interpreter that runs this program, relative to the checkout when it is inside it.

    Pulumi runs the program with the virtualenv Pulumi.yaml names (.venv in the checkout), so this is
    `.venv/bin`. Not resolved: a virtualenv's `python` is a link to the base interpreter, which lacks the
    project's packages. A virtualenv outside the checkout is named as it is (moving it then reruns the commands).
    """
    bin_dir = Path(os.path.abspath(executable or sys.executable)).parent
    try:
        return bin_dir.relative_to(repo_root).as_posix()
    except ValueError:
        return str(bin_dir)


def python_module(repo_root: Path, module: str, *args: pulumi.Input[str],
                  executable: Optional[str] = None) -> pulumi.Output[str]:
    """`PATH=.venv/bin:"$PATH" python -m MODULE ARGS...`, each argument quoted for /bin/sh."""
    head = f'PATH={shlex.quote(interpreter_dir(repo_root, executable))}:"$PATH" python -m {module}'
    quoted = [pulumi.Output.from_input(arg).apply(lambda value: shlex.quote(str(value))) for arg in args]
    return pulumi.Output.all(*quoted).apply(lambda parts: " ".join([head, *parts]))
