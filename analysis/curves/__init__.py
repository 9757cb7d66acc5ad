"""Whole loss curves as data: schedule-aware curve laws fitted on some runs, predicting others.

  python -m analysis.curves (--runs DIR ... | --table CSV) --fit RUN ... [--predict RUN ...] --out DIR

Modules: areas (the schedule as the laws read it: S1, the annealing drops and their quadrature
nodes; the lr of a config from training/schedules/), data (curves from a table or run
directories), fit (fit the forms, predict, errors, the best form), plot, __main__ (the command).
The laws are law forms of study CURVES in analysis/forms/ (tissue, multipower, tissue_n), fitted by
analysis/fitter.py like every other form.
"""
