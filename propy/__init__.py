"""ProPy: prompt pyramids on a frozen CLIP for Partially Relevant Video Retrieval."""

import os

# With GNU OpenMP's default wait policy, torch's CPU kernels on small tensors ran about
# 20x slower with two threads than with one on the study's 2-core machine (`propy bench`:
# 0.3 vs 5.5 train steps/s); any explicit policy removes the stall. PASSIVE is safe when
# several processes share the cores; `make study` runs one at a time and uses ACTIVE.
# It only takes effect if set before torch is first imported, hence here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
