"""mlplab's Hydra plugins: a sweeper that plans a sweep once and launches only what is left,
and a Dask launcher (``hydra/launcher=dask``) for local cores, an existing Dask scheduler or a
SLURM allocation. Hydra finds plugins in the ``hydra_plugins`` namespace only."""
