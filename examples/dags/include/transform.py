"""Helpers imported by the DAGs. Hidden from the DAG parser by .airflowignore, shipped anyway."""


def normalise(rows):
    return [r.strip().lower() for r in rows]
