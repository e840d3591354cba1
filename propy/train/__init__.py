"""Training: the ProPy trainer, the small CLIP's pre-training, the optimiser, the loss, the validation sweep.

Public API: ``trainer.train`` / ``Trainer``; ``pretrain_clip.pretrain``; ``optim.make_optimizer`` /
``make_scheduler``; ``losses.symmetric_infonce``; ``sweep.sweep``.
"""
