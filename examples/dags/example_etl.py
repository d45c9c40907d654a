"""A small example DAG shipped by examples/deploy-with-fake.ts."""
from datetime import datetime

from airflow.sdk import dag, task

from include.transform import normalise


@dag(schedule="@daily", start_date=datetime(2026, 1, 1), catchup=False)
def example_etl():
    @task
    def extract():
        return [" Alpha ", "beta"]

    @task
    def load(rows):
        print(normalise(rows))

    load(extract())


example_etl()
