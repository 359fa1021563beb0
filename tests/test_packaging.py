"""The wheel is complete and works from any folder once installed (docs/install.md runs the same commands).

Builds the wheel from this checkout, installs it (not editable) into a throw-away venv that reuses this
environment's torch & co. through a .pth file, and in an empty folder runs the commands a new user would:
runs land in that folder, the embedded dataset in $YOLO_ATTN_HOME, and the installed package is left unchanged."""
import hashlib
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(cmd, cwd, env, timeout=600):
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{cmd} exited {p.returncode}:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p.stdout + p.stderr


def snapshot(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


@pytest.mark.slow
def test_the_installed_wheel_works_from_an_empty_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # the wheel, built without touching this environment (no build isolation: setuptools is here, no network)
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, ROOT],
        tmp_path, env)
    (wheel,) = wheels.glob("yolo_attn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = [p.relative_to(ROOT).as_posix() for p in [*(ROOT / "model_yamls").rglob("*.yaml"),
                                                         *(ROOT / "data" / "hyps").glob("*.yaml")]]
    for name in shipped:
        packaged = "yolo_attn/_data/" + name.removeprefix("data/")
        assert packaged in names, f"{name} is not in the wheel as {packaged}"

    # a venv without pip that sees this environment's packages (torch, yolov5, ...) after its own
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path, env)
    site = Path(run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    tmp_path, env).strip())
    (site / "reuse-torch.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-deps", "--no-index",
         "-q", wheel], tmp_path, env)
    package = site / "yolo_attn"
    assert (package / "_data" / "model_yamls" / "yolov5s-cbam.yaml").is_file()
    before = snapshot(package)

    work, home = tmp_path / "empty", tmp_path / "home"
    work.mkdir()
    env = dict(env, YOLO_ATTN_HOME=str(home), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    python, cli = venv / "bin" / "python", venv / "bin" / "yolo-attn"
    # the package imported is the installed one, not this checkout's
    assert run([python, "-c", "import yolo_attn; print(yolo_attn.__file__)"], work, env).strip() == \
        str(package / "__init__.py")
    assert "CBAM" in run([cli, "layers"], work, env)
    from yolo_attn import __version__
    assert run([cli, "--version"], work, env).strip() == f"yolo-attn {__version__}"
    assert "usage: yolo-attn COMMAND" in run([python, "-m", "yolo_attn", "--help"], work, env)
    out = run([cli, "train", "--cfg", "yolov5s-cbam.yaml", "--epochs", "1", "--imgsz", "64", "--batch-size", "8",
               "--workers", "0"], work, env, timeout=900)
    assert "mAP50" in out
    assert (work / "runs" / "train" / "yolov5s-cbam" / "weights" / "best.pt").is_file()
    assert (home / "shapes" / "shapes.yaml").is_file()

    best = work / "runs" / "train" / "yolov5s-cbam" / "weights" / "best.pt"
    assert "mAP50" in run([cli, "val", "--weights", best, "--imgsz", "64", "--batch-size", "8", "--workers", "0"],
                          work, env)
    image = next((home / "shapes").rglob("*.jpg"))
    run([cli, "heatmap", "--weights", best, "--source", image, "--out", "maps", "--imgsz", "64"], work, env)
    assert list((work / "maps").rglob("*.jpg")) or list((work / "maps").rglob("*.png")), "heatmap wrote no image"
    run([cli, "ablate", "--cfgs", "yolov5s.yaml", "yolov5s-se.yaml", "--seeds", "1", "--epochs", "1", "--imgsz", "64",
         "--batch-size", "8", "--workers", "0", "--bench-imgsz", "64", "--bench-rounds", "2", "--out", "sweep"],
        work, env, timeout=900)
    assert (work / "sweep" / "ablation.md").is_file()
    out = run([cli, "train", "--cfg", "yolo26n-cbam.yaml", "epochs=1", "imgsz=64", "batch=8", "workers=0"], work, env,
              timeout=900)
    assert "mAP50" in out
    assert snapshot(package) == before, "something was written into the installed package"
    assert not list(site.glob("runs")) and not (package / "runs").exists()


@pytest.mark.slow
def test_python_dash_m_build_and_twine_check(tmp_path):
    """``python -m build`` makes the sdist, then the wheel from the sdist (so the sdist must hold the shipped YAMLs
    and hyper-parameters), and ``twine check`` accepts both; no build isolation (offline)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, ROOT], tmp_path, env)
    (sdist,) = dist.glob("yolo_attn-*.tar.gz")
    (wheel,) = dist.glob("yolo_attn-*.whl")
    import tarfile

    members = {name.split("/", 1)[1] for name in tarfile.open(sdist).getnames() if "/" in name}
    for path in [*(ROOT / "model_yamls").rglob("*.yaml"), *(ROOT / "data" / "hyps").glob("*.yaml")]:
        assert path.relative_to(ROOT).as_posix() in members, f"{path.relative_to(ROOT)} is not in the sdist"
    assert "yolo_attn/_data/model_yamls/yolov5s-cbam.yaml" in zipfile.ZipFile(wheel).namelist()
    out = run([sys.executable, "-m", "twine", "check", "--strict", sdist, wheel], tmp_path, env)
    assert out.count("PASSED") == 2, out


def test_an_unwritable_home_is_refused_naming_yolo_attn_home(tmp_path):
    from yolo_attn.datasets import shapes
    from yolo_attn.errors import UsageError

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(UsageError, match="YOLO_ATTN_HOME") as e:
        shapes.ensure(blocker / "shapes")  # its parent is a file: nothing can be created there, even as root
    assert str(blocker) in str(e.value)


def test_version_and_python_dash_m(tmp_path):
    from yolo_attn import __version__

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "yolo_attn", "--version"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert (out.returncode, out.stdout.strip()) == (0, f"yolo-attn {__version__}")
    out = subprocess.run([sys.executable, "-m", "yolo_attn", "nonsense"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and "unknown command 'nonsense'" in out.stderr


def test_an_unsupported_yolov5_or_ultralytics_is_refused_naming_the_supported_one(monkeypatch):
    from importlib import metadata

    from yolo_attn.engines.ultralytics import version as ul_version
    from yolo_attn.engines.yolov5 import engine as v5_engine
    from yolo_attn.errors import UsageError

    v5_engine.require_supported_version()  # the installed one passes
    monkeypatch.setattr(metadata, "version", lambda name: "7.0.13")
    with pytest.raises(UsageError, match=r"supports yolov5==7\.0\.14 only"):
        v5_engine.require_supported_version()
    monkeypatch.setattr(ul_version, "changed", lambda: [("ultralytics.__version__", "8.5.0 installed, 8.4.190 "
                                                                                     "supported")])
    with pytest.raises(UsageError, match=r"ultralytics==8\.4\.190"):
        ul_version.require()
