"""Batch jobs on a Ray cluster: the local engine's per-file work, spread over Ray Data actors.

    driver: file list ──▶ Ray Data ──map_batches──▶ actor pool ──rows──▶ driver: progress,
                                                   (one model load        report, face index
                                                    per actor)            (single writer)

- `ray_runtime`: connecting (or starting a local instance), planning the actor pool, worker
  identity and per-node figures, the fault-injection seam for tests and drills.
- `ray_enhance`: `run_enhance_on_ray`, the Ray twin of `engine.enhance.batch.run_batch`.
- `ray_index`: `run_index_on_ray`, the Ray twin of `engine.index.indexer.index_files`.

Ray is an optional extra (`pip install '.[ray]'`); nothing here imports it at module level,
so the rest of AMP works without it.
"""
