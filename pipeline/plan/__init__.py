"""The plan of a run over delivery days, the same wherever it runs: which delivery to stage
and commit next and which day to score next (:mod:`pipeline.plan.schedule`), the steps
themselves (:mod:`pipeline.plan.steps`) and the run that drives them over any executor
(:mod:`pipeline.plan.run`). The Prefect flows execute it on task runners (``flows/``);
:mod:`pipeline.plan.serial` executes it in this process (evaluation, tests)."""
