"""The application around the core: the `distillery` command (cli), the UI launcher (ui),
the demo's generated samples (sample_data), Prefect's environment for our processes
(prefect_env), the run's own Prefect server (local_server), the console filter (quiet_errors)
and the deployments' pull step (deploy_steps). The core (distillery/*, flows/, sources/,
filters/, teacher/, shards/, trainer/) never imports from here.
"""
