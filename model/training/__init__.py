"""Training and evaluation of DaNet on streamed shards: config, targets, checkpoints, the loop."""
