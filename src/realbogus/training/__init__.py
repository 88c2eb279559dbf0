"""Training: fitting and fine-tuning networks, fitting the observing-condition correction."""
