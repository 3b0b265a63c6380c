# Sourced by the test script: points the tests at the venv's Python and NVRTC.
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SCDREAMER_PYTHON="$_root/.venv/bin/python"
_nvrtc_dir="$("$SCDREAMER_PYTHON" - <<'PY' 2>/dev/null
import importlib.util, os, glob
spec = importlib.util.find_spec("nvidia")
roots = list(spec.submodule_search_locations) if spec else []
for r in roots:
    for lib in glob.glob(os.path.join(r, "**", "libnvrtc.so*"), recursive=True):
        print(os.path.dirname(lib)); raise SystemExit
PY
)"
if [ -n "$_nvrtc_dir" ]; then
    export SCDREAMER_NVRTC_DIR="$_nvrtc_dir"
    export LD_LIBRARY_PATH="$_nvrtc_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
