"""What a wheel holds, read without installing or importing it.

- :func:`read_wheel` — the metadata ``Name`` and ``Version`` (``*.dist-info/METADATA``)
  and every start-up hook the wheel would install;
- start-up hooks are files that make Python run code at interpreter start, in every
  process of the environment, whether or not the plugin is enabled: ``*.pth`` files
  (anywhere in the wheel: pip installs those at the top of ``<name>.data/purelib`` /
  ``platlib`` too), ``sitecustomize`` / ``usercustomize`` modules, and console or GUI
  scripts that would replace a core command (``llmos``, ``python``, ``pip``).
  A plugin never needs any of them: its code runs when llmos loads its entry point.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath

from llmos.sdk import ValidationError

#: commands a plugin's wheel may not install a script for
CORE_COMMANDS = ("llmos", "pip", "pip3", "python", "python3")
_STARTUP_MODULES = ("sitecustomize", "usercustomize")


@dataclass
class WheelInfo:
    filename: str
    name: str
    version: str
    startup_hooks: list[str] = field(default_factory=list)


def _lib_relative(parts: tuple[str, ...]) -> tuple[str, ...]:
    """Path inside the installed library: ``x.data/purelib/a/b`` -> ``a/b``."""
    if len(parts) >= 3 and parts[0].endswith(".data") and parts[1] in ("purelib", "platlib"):
        return parts[2:]
    return parts


def _shadows(script: str) -> bool:
    stem = script.lower().removesuffix(".exe")
    return stem in CORE_COMMANDS or re.fullmatch(r"(python|pip)3\.\d+", stem) is not None


def read_wheel(path: Path | str) -> WheelInfo:
    """Read ``path`` (a wheel): metadata name and version, and its start-up hooks.

    :raises ValidationError: not a readable wheel, or no ``.dist-info/METADATA``.
    """
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ValidationError(f"{path.name} is not a readable wheel (zip): {exc}") from exc
    with zf:
        members = [n for n in zf.namelist() if not n.endswith("/")]
        metas = [n for n in members if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
        if len(metas) != 1:
            raise ValidationError(f"{path.name} has {len(metas)} .dist-info/METADATA files, a wheel has exactly one")
        headers = HeaderParser().parsestr(zf.read(metas[0]).decode("utf-8", "replace"))
        info = WheelInfo(path.name, str(headers.get("Name", "")).strip(), str(headers.get("Version", "")).strip())
        hooks: list[str] = []
        for n in members:
            parts = PurePosixPath(n).parts
            rel = _lib_relative(parts)
            if parts[-1].endswith(".pth"):
                hooks.append(f"{n} (a .pth file runs at every interpreter start)")
            elif rel and rel[0].split(".")[0] in _STARTUP_MODULES:
                hooks.append(f"{n} (a {rel[0].split('.')[0]} module runs at every interpreter start)")
            elif len(parts) == 3 and parts[0].endswith(".data") and parts[1] == "scripts" and _shadows(parts[2]):
                hooks.append(f"{n} (a script that replaces the {parts[2]} command)")
        eps = [n for n in members if re.fullmatch(r"[^/]+\.dist-info/entry_points\.txt", n)]
        if eps:
            import configparser

            cp = configparser.ConfigParser(delimiters=("=",), interpolation=None)
            cp.optionxform = str  # type: ignore[assignment,method-assign]
            try:
                cp.read_string(zf.read(eps[0]).decode("utf-8", "replace"))
            except configparser.Error as exc:
                raise ValidationError(f"{path.name}: entry_points.txt is not valid: {exc}") from exc
            for section in ("console_scripts", "gui_scripts"):
                if cp.has_section(section):
                    for script in cp.options(section):
                        if _shadows(script.strip()):
                            hooks.append(f"{section} {script.strip()!r} (replaces the {script.strip()} command)")
        info.startup_hooks = hooks
    return info


def refuse_startup_hooks(info: WheelInfo) -> None:
    """Raise ``wheel-startup-hook`` when the wheel carries any start-up hook."""
    if info.startup_hooks:
        raise ValidationError(f"wheel-startup-hook: {info.filename} carries {'; '.join(info.startup_hooks)}: code "
                              "that would run in every Python process of this environment, even with the plugin "
                              "disabled; a plugin's code runs only through its llmos entry point. Refusing it")


def check_identity(info: WheelInfo, name: str, version: str) -> None:
    """Raise when the wheel's metadata Name (PEP 503-normalized) or Version is not ``name`` ``version``."""
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

    try:
        same_version = Version(info.version) == Version(version)
    except InvalidVersion:
        same_version = False
    if canonicalize_name(info.name) != canonicalize_name(name) or not same_version:
        raise ValidationError(f"artifact-wheel: {info.filename} is {info.name or '?'} {info.version or '?'} by its "
                              f"metadata, not {name} {version}: build the wheel of this project (or drop --wheel)")
