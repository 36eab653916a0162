-- A job's attempt history is written once, with its outcome (or by the lost-job sweep), not
-- inserted at the start and updated at the end (decision 24): the row of a running job names
-- the worker holding it, so the sweep can record a lost attempt under that worker, and the ops
-- view can show the attempt under way.
alter table jobs add column worker text;
