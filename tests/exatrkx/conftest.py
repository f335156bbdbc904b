"""exatrkx tests run torch (and FAISS, via the pipeline) on one thread: 2 shared cores."""

from __future__ import annotations

import faiss
import torch

torch.set_num_threads(1)
faiss.omp_set_num_threads(1)
