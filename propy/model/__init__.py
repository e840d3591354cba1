"""The model: a frozen open_clip CLIP with ProPy's prompts, the baselines, and their checkpoints.

Public API (imported from the modules, so that importing the package does not import torch):
``backbone.load_clip`` / ``create_clip`` / ``tokenize``; ``pyramid.build_pyramid``; ``masks.event_attention_mask``;
``network.build_model`` / ``ProPy`` / ``scores``; ``loading.load_model`` (a variant and its checkpoint);
``checkpoint.save_trained`` / ``load_trained``; ``weights.read_weights``; ``reference.import_reference``.
"""
