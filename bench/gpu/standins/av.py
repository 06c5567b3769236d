"""Stand-in for PyAV on the GPU machine, where the real one (34 MiB with its FFmpeg) does not fit in what a run carries.

`datasets.media` imports av at module level, so everything that imports it on the way (the avatar fit, the config
loader, the test suite's conftest) needs the name; no GPU step decodes or encodes video. Any use fails loudly.
`bench/gpu.sh` puts this folder on PYTHONPATH there, and `bench/gpu/image.py` does the same when it simulates it.
"""


def __getattr__(name: str):
    if name.startswith("__"):  # introspection (hasattr(av, "__path__"), ...) sees an ordinary module
        raise AttributeError(name)
    raise ImportError(f"av.{name}: PyAV is not carried to the GPU machine (bench/gpu/standins/av.py stands in)")
