"""Validation on held-out episodes: action L1, token accuracies, and PSNR/SSIM of decoded world-model frames.

- ``vla/l1``: L1 of the continuous head against the bin-centre targets, in normalised units ([-1, 1] bins), and
  ``vla/l1_units`` in the dataset's units; ``vla/l1_units_mean_baseline`` is the L1 of always predicting the mean
  training target, the bar a policy must clear.
- ``vla/token_acc``, ``wm/token_acc``: teacher-forced argmax accuracy on the labelled action / image tokens.
- ``wm/psnr``, ``wm/ssim``: the teacher-forced argmax image tokens of ``image_samples`` world-model samples, decoded
  by the VQGAN, against the real next frames (resized to the model's image size); ``wm/psnr_vqgan`` is the VQGAN's
  own reconstruction of the real frames (the best the model can reach) and ``wm/psnr_copy`` the copy-the-current-
  frame baseline.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from rynnvla_model.data.samples import KIND_VLA
from rynnvla_model.modeling import IGNORE_INDEX
from rynnvla_model.processor import RynnVLAProcessor
from rynnvla_model.training.distributed import DistInfo
from rynnvla_model.training.token_data import TokenDataset


def _accuracy_counts(logits: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor) -> tuple[float, float]:
    """Correct and total teacher-forced predictions on labels that fall in ``ids``."""
    shift_labels = labels[:, 1:]
    chosen = torch.isin(shift_labels, ids) & (shift_labels != IGNORE_INDEX)
    if not chosen.any():
        return 0.0, 0.0
    pred = logits[:, :-1].argmax(dim=-1)
    return float((pred[chosen] == shift_labels[chosen]).sum()), float(chosen.sum())


@torch.inference_mode()
def validate(
    model: torch.nn.Module,
    batches: Iterable[dict[str, torch.Tensor]],
    processor: RynnVLAProcessor,
    info: DistInfo,
    autocast: Any,
) -> dict[str, float]:
    """Loss, action L1 and token accuracies over ``batches``."""
    layout = processor.layout
    action_ids = torch.as_tensor(layout.action_value_ids(), device=info.device)
    image_ids = torch.as_tensor(layout.image_ids(), device=info.device)
    tok = processor.action_tokenizer
    sums = torch.zeros(9, dtype=torch.float64)
    # 0 loss*n, 1 n, 2 l1 sum, 3 l1 units sum, 4 l1 count, 5 act correct, 6 act total, 7 img correct, 8 img total
    model.eval()
    for batch in batches:
        batch = {k: v.to(info.device) for k, v in batch.items()}
        with autocast():
            out = model(batch["input_ids"], labels=batch["labels"], attention_mask=batch["attention_mask"])
        n = batch["input_ids"].shape[0]
        sums[0] += float(out.loss) * n
        sums[1] += n
        if out.actions is not None:
            pred = out.actions.float().cpu().numpy()
            target = out.action_targets.float().cpu().numpy()
            sums[2] += float(np.abs(pred - target).sum())
            sums[3] += float(np.abs(tok.denormalise(pred) - tok.denormalise(target)).sum())
            sums[4] += pred.size
        sums[5:7] += torch.tensor(_accuracy_counts(out.logits, batch["labels"], action_ids), dtype=torch.float64)
        sums[7:9] += torch.tensor(_accuracy_counts(out.logits, batch["labels"], image_ids), dtype=torch.float64)
    metrics = {"val/loss": float(sums[0] / max(sums[1], 1))}
    if sums[4] > 0:
        metrics["vla/l1"] = float(sums[2] / sums[4])
        metrics["vla/l1_units"] = float(sums[3] / sums[4])
    if sums[6] > 0:
        metrics["vla/token_acc"] = float(sums[5] / sums[6])
    if sums[8] > 0:
        metrics["wm/token_acc"] = float(sums[7] / sums[8])
    model.train()
    return metrics


def mean_baseline_l1(dataset: TokenDataset, mean_target: np.ndarray, limit: int = 2000) -> float:
    """L1 (dataset units) of predicting ``mean_target`` for the first ``limit`` VLA samples of ``dataset``."""
    vla = [i for i in range(len(dataset)) if dataset.kind(i) == KIND_VLA][:limit]
    errors = [np.abs(dataset.chunk(i) - mean_target).mean() for i in vla]
    return float(np.mean(errors)) if errors else float("nan")


@torch.inference_mode()
def world_model_image_metrics(
    model: torch.nn.Module,
    dataset: TokenDataset,
    processor: RynnVLAProcessor,
    frames: Any,
    info: DistInfo,
    autocast: Any,
    count: int,
) -> dict[str, float]:
    """PSNR/SSIM of teacher-forced decoded next frames against the real ones (first ``count`` world-model
    samples of ``dataset``); ``frames(row)`` returns the (H, W, 3) uint8 images of a row, one per camera."""
    from rynnvla_model.metrics import psnr, ssim

    indices = [i for i in range(len(dataset)) if dataset.kind(i) != KIND_VLA][:count]
    if not indices:
        return {}
    image_ids = torch.as_tensor(processor.layout.image_ids(), device=info.device)
    preds, truths, recons, currents = [], [], [], []
    model.eval()
    for i in indices:
        sample = dataset[i]
        ids = torch.as_tensor(sample.input_ids, device=info.device)[None]
        with autocast():
            logits = model(ids).logits[0].float()
        labels = torch.as_tensor(sample.labels, device=info.device)
        answer = torch.nonzero(labels != IGNORE_INDEX).flatten()
        # Teacher forcing: the code at position p is the argmax over image codes of the logits at p - 1; the
        # block's markers and grid-size tokens are kept, so the answer decodes like a generated one.
        is_image = torch.isin(labels, image_ids)
        is_image[0] = False
        predicted = labels.clone()
        positions = torch.nonzero(is_image).flatten()
        predicted[positions] = image_ids[logits[positions - 1][:, image_ids].argmax(dim=-1)]
        answer_ids = predicted[answer].cpu().numpy()
        label_ids = labels[answer].cpu().numpy()
        preds += processor.decode_images(answer_ids)
        recons += processor.decode_images(label_ids)
        row = dataset.refs[i].row
        truths += [processor.image_tokenizer.resize(img) for img in frames(row + dataset.spec.world_model_horizon)]
        currents += [processor.image_tokenizer.resize(img) for img in frames(row)]
    model.train()
    p, t, r, c = (np.stack(x) for x in (preds, truths, recons, currents))
    return {
        "wm/psnr": psnr(p, t),
        "wm/ssim": ssim(p, t),
        "wm/psnr_vqgan": psnr(r, t),
        "wm/psnr_copy": psnr(c, t),
    }
