"""One training run, one concern a module: plan, sharding, optimizer, jitted steps, batches, the
step loop, tracking, checkpoints, results, memory and process setup. train.py is the entry point."""
