"""The Airflow side of promptmill: connections and params -> promptmill settings, the labeling operator and
its Batch API trigger. Kept apart from the `promptmill` package, which never imports Airflow.

Installed with the project (pyproject finds both packages under include/), so the DAG processor, workers
and the triggerer all import it the same way.
"""
