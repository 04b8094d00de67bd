"""The app must not import TensorFlow for screens that need no model."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from fixtures.tui_support import FINISHED, copy_runs

SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from tui_cifar.tui.app import CifarApp

    async def main():
        runs = Path(sys.argv[1])
        app = CifarApp(runs, poll_interval=0.1)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause(0.5)
            for key in ("c", "r", "t", "e"):
                await pilot.press(key)
                await pilot.pause(0.3)
            app.open_run(runs / sys.argv[2], "train")
            await pilot.pause(0.3)
            app.open_run(runs / sys.argv[2], "evaluate")
            await pilot.pause(0.5)
            await pilot.press("ctrl+p")
            await pilot.pause(0.3)
            print("MODES", app.current_mode)
        heavy = sorted(m for m in ("tensorflow", "keras", "sklearn") if m in sys.modules)
        print("HEAVY", ",".join(heavy) or "none")

    asyncio.run(main())
""")


def test_non_model_screens_do_not_import_tensorflow(tmp_path):
    runs = copy_runs(tmp_path / "runs")
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(runs), FINISHED], capture_output=True, text=True,
                         timeout=120, env=env, cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "MODES evaluate" in out.stdout
    assert "HEAVY none" in out.stdout, out.stdout
