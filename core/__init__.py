"""The bottom layer every package imports: config files and their errors, atomic files, and the
run-directory contract. Nothing here imports JAX, so the sweep planner's file handling, the
analysis and the tests read runs without it."""
