"""Navigation agents: baselines, Seq2Seq and EnvDrop."""
