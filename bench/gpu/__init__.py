"""The parts of `bench/gpu.sh`, the prepared GPU run (docs/gpu.md).

    pack.py     here: what the GPU machine lacks → `.whl/` (wheels for CPython 3.12, flite, the avatar's person)
    image.py    here: the GPU machine's Python simulated, for the dry run
    steps.py    install, gsplat build, pytest -m gpu, render speed, text→video; and the results file
    avatar.py   the avatar + refiner at 256² with the cluster preset
    train.py    each foundation model's DeepSpeed step in one process, without Ray
    standins/   modules standing in there for ones left behind (av)

They live in this folder, not beside the other benchmarks, because `make bench` runs every `bench/*.py`.
"""
