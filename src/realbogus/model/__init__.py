"""Models: architectures, input transforms, the model card, packages, Rubin interchange."""
