"""Object detection metrics: COCO mean average precision with torchmetrics' interface
(``MeanAveragePrecision``) and Pascal VOC's average precision (``voc_ap``).

COCO rules, as pycocotools' ``COCOeval`` applies them: per image and class, detections are
taken in decreasing score (at most ``max_dets``) and matched greedily, each to the unmatched
ground truth of highest IoU at or above the threshold; crowd ground truths may match many
detections and never count as misses; ground truths outside an area range are ignored, and
so are the detections matched to them or, when unmatched, themselves outside the range.
Precision is made monotone (the envelope) and read at 101 recall points; the mean leaves
out classes without ground truth.

>>> import shendu as sd
>>> from shendu.metrics import MeanAveragePrecision
>>> m = MeanAveragePrecision()
>>> m.update([{"boxes": sd.tensor([[0., 0., 10., 10.]]), "scores": sd.tensor([0.9]),
...            "labels": sd.tensor([1])}],
...          [{"boxes": sd.tensor([[0., 0., 10., 9.]]), "labels": sd.tensor([1])}])
>>> r = m.compute()
>>> round(r["map_50"], 6), round(r["map_75"], 6), round(r["map"], 6)
(1.0, 1.0, 0.9)
"""
from __future__ import annotations

import numpy as np

__all__ = ["MeanAveragePrecision", "voc_ap", "box_iou_np"]

_AREAS = {"all": (0.0, 1e10), "small": (0.0, 32.0 ** 2), "medium": (32.0 ** 2, 96.0 ** 2),
          "large": (96.0 ** 2, 1e10)}


def _np(x, dtype=None):
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    return np.asarray(x, dtype=dtype)


def box_iou_np(dt: np.ndarray, gt: np.ndarray, crowd: np.ndarray | None = None) -> np.ndarray:
    """IoU ``(D, G)`` of xyxy boxes; against a crowd ground truth the union is the
    detection's own area (COCO's rule)."""
    area_d = (dt[:, 2] - dt[:, 0]) * (dt[:, 3] - dt[:, 1])
    area_g = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])
    w = (np.minimum(dt[:, None, 2], gt[None, :, 2]) - np.maximum(dt[:, None, 0],
                                                                 gt[None, :, 0])).clip(0)
    h = (np.minimum(dt[:, None, 3], gt[None, :, 3]) - np.maximum(dt[:, None, 1],
                                                                 gt[None, :, 1])).clip(0)
    inter = w * h
    union = area_d[:, None] + area_g[None, :] - inter
    if crowd is not None:
        union = np.where(crowd[None, :].astype(bool), area_d[:, None], union)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def _match(ious, gt_ignore, crowd, iou_thrs):
    """COCO's greedy matching for one image and class. ``ious`` ``(D, G)`` with detections
    in score order and ground truths sorted non-ignored first. Returns per threshold which
    detections matched (``(T, D)`` bool) and whether that match was to an ignored truth."""
    t_n, (d_n, g_n) = len(iou_thrs), ious.shape
    gt_taken = np.zeros((t_n, g_n), bool)
    dt_matched = np.zeros((t_n, d_n), bool)
    dt_ignore = np.zeros((t_n, d_n), bool)
    for ti, t in enumerate(iou_thrs):
        for d in range(d_n):
            best, m = min(t, 1 - 1e-10), -1
            for g in range(g_n):
                if gt_taken[ti, g] and not crowd[g]:
                    continue
                if m > -1 and not gt_ignore[m] and gt_ignore[g]:
                    break  # the rest are ignored truths: a real match is preferred
                if ious[d, g] < best:
                    continue
                best, m = ious[d, g], g
            if m == -1:
                continue
            dt_matched[ti, d], dt_ignore[ti, d] = True, gt_ignore[m]
            gt_taken[ti, m] = True
    return dt_matched, dt_ignore


def voc_ap(recall, precision, use_07_metric: bool = False) -> float:
    """Pascal VOC average precision of one class from its PR curve (detections in
    decreasing score): the 11-point interpolation of VOC2007 or the area under the
    precision envelope (VOC2010 and later).

    >>> voc_ap([0.5, 1.0], [1.0, 0.5])
    0.75
    >>> round(voc_ap([0.5, 1.0], [1.0, 0.5], use_07_metric=True), 4)
    0.7727
    """
    rec, prec = _np(recall, np.float64), _np(precision, np.float64)
    if use_07_metric:
        return float(np.mean([prec[rec >= t].max() if (rec >= t).any() else 0.0
                              for t in np.linspace(0, 1, 11)]))
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


class MeanAveragePrecision:
    """COCO mAP and mAR over a stream of images (torchmetrics' ``MeanAveragePrecision``).

    Args:
        box_format: ``'xyxy'`` (default), ``'xywh'`` or ``'cxcywh'``.
        iou_thresholds: default ``0.5:0.05:0.95``.
        rec_thresholds: default 101 points ``0:0.01:1``.
        max_detection_thresholds: default ``[1, 10, 100]``.
        class_metrics: also give ``map_per_class`` and ``mar_100_per_class``.

    ``update(preds, target)`` takes one dict per image: predictions with ``boxes``
    ``(n, 4)``, ``scores`` ``(n,)`` and ``labels`` ``(n,)``; targets with ``boxes``,
    ``labels`` and optionally ``iscrowd`` and ``area``. ``compute()`` returns ``map``,
    ``map_50``, ``map_75``, ``map_small/medium/large``, ``mar_1/10/100``,
    ``mar_small/medium/large`` and ``classes`` (a metric with no ground truth is -1, as in
    COCO). After ``compute()``, ``precision`` ``(T, R, K, A, M)`` holds the PR curves.
    """

    def __init__(self, box_format: str = "xyxy", iou_thresholds=None, rec_thresholds=None,
                 max_detection_thresholds=None, class_metrics: bool = False):
        if box_format not in ("xyxy", "xywh", "cxcywh"):
            raise ValueError(f"MeanAveragePrecision: box_format must be 'xyxy', 'xywh' or "
                             f"'cxcywh', got {box_format!r}")
        self.box_format = box_format
        self.iou_thresholds = np.asarray(iou_thresholds if iou_thresholds is not None else
                                         np.linspace(0.5, 0.95, 10))
        self.rec_thresholds = np.asarray(rec_thresholds if rec_thresholds is not None else
                                         np.linspace(0.0, 1.0, 101))
        self.max_detection_thresholds = sorted(max_detection_thresholds or [1, 10, 100])
        self.class_metrics = class_metrics
        self.reset()

    def reset(self) -> None:
        self._preds, self._targets = [], []

    def _boxes(self, boxes, where):
        b = _np(boxes, np.float64).reshape(-1, 4) if np.size(_np(boxes)) else np.zeros((0, 4))
        if self.box_format == "xywh":
            b = np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], 1)
        elif self.box_format == "cxcywh":
            b = np.concatenate([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], 1)
        bad = np.flatnonzero((b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1]))
        if bad.size:
            raise ValueError(f"MeanAveragePrecision: {where}, box {bad[0]} "
                             f"{b[bad[0]].tolist()} has x2 < x1 or y2 < y1")
        return b

    def update(self, preds, target) -> None:
        """Add one batch: a list of prediction dicts and a list of target dicts."""
        if len(preds) != len(target):
            raise ValueError(f"MeanAveragePrecision.update: {len(preds)} predictions but "
                             f"{len(target)} targets; give one dict per image to each")
        base, new_preds, new_targets = len(self._preds), [], []
        for i, (p, t) in enumerate(zip(preds, target)):
            where = f"image {base + i}"
            for key, d, kind in (("boxes", p, "preds"), ("scores", p, "preds"),
                                 ("labels", p, "preds"), ("boxes", t, "target"),
                                 ("labels", t, "target")):
                if key not in d:
                    raise ValueError(f"MeanAveragePrecision.update: {kind} of {where} has no "
                                     f"{key!r}")
            pb, tb = self._boxes(p["boxes"], where + " preds"), \
                self._boxes(t["boxes"], where + " target")
            scores = _np(p["scores"], np.float64).reshape(-1)
            plab = _np(p["labels"]).reshape(-1).astype(np.int64)
            tlab = _np(t["labels"]).reshape(-1).astype(np.int64)
            if not len(pb) == len(scores) == len(plab) or len(tb) != len(tlab):
                raise ValueError(f"MeanAveragePrecision.update: {where} has {len(pb)} boxes, "
                                 f"{len(scores)} scores, {len(plab)} labels predicted and "
                                 f"{len(tb)} boxes, {len(tlab)} labels as target")
            if np.isnan(scores).any():
                raise ValueError(f"MeanAveragePrecision.update: {where} has a NaN score at "
                                 f"index {int(np.flatnonzero(np.isnan(scores))[0])}")
            crowd = _np(t.get("iscrowd", np.zeros(len(tb)))).reshape(-1).astype(bool)
            area = _np(t["area"], np.float64).reshape(-1) if "area" in t else \
                (tb[:, 2] - tb[:, 0]) * (tb[:, 3] - tb[:, 1])
            new_preds.append((pb, scores, plab))
            new_targets.append((tb, tlab, crowd, area))
        self._preds += new_preds  # only once the whole batch is valid
        self._targets += new_targets

    def _evaluate(self, classes):
        """Per class, area range and image: scores, matched/ignored flags, truth counts."""
        max_det = self.max_detection_thresholds[-1]
        evals = {}
        for k, c in enumerate(classes):
            for (pb, ps, pl), (tb, tl, crowd, garea) in zip(self._preds, self._targets):
                dsel, gsel = pl == c, tl == c
                if not dsel.any() and not gsel.any():
                    continue
                order = np.argsort(-ps[dsel], kind="mergesort")[:max_det]
                db, ds = pb[dsel][order], ps[dsel][order]
                darea = (db[:, 2] - db[:, 0]) * (db[:, 3] - db[:, 1])
                gb, gcrowd, ga = tb[gsel], crowd[gsel], garea[gsel]
                for a, (lo, hi) in enumerate(_AREAS.values()):
                    gign = gcrowd | (ga < lo) | (ga > hi)
                    gorder = np.argsort(gign, kind="mergesort")
                    ious = box_iou_np(db, gb[gorder], gcrowd[gorder])
                    matched, mign = _match(ious, gign[gorder], gcrowd[gorder],
                                           self.iou_thresholds)
                    outside = (darea < lo) | (darea > hi)
                    dign = mign | (~matched & outside[None])
                    evals.setdefault((k, a), []).append((ds, matched, dign, int((~gign).sum())))
        return evals

    def _accumulate(self, classes):
        t_n, r_n = len(self.iou_thresholds), len(self.rec_thresholds)
        k_n, a_n, m_n = len(classes), len(_AREAS), len(self.max_detection_thresholds)
        precision = -np.ones((t_n, r_n, k_n, a_n, m_n))
        recall = -np.ones((t_n, k_n, a_n, m_n))
        for (k, a), per_image in self._evaluate(classes).items():
            npig = sum(e[3] for e in per_image)
            if npig == 0:
                continue
            for mi, m in enumerate(self.max_detection_thresholds):
                scores = np.concatenate([e[0][:m] for e in per_image])
                order = np.argsort(-scores, kind="mergesort")
                matched = np.concatenate([e[1][:, :m] for e in per_image], 1)[:, order]
                ign = np.concatenate([e[2][:, :m] for e in per_image], 1)[:, order]
                tps = np.cumsum(matched & ~ign, 1, dtype=np.float64)
                fps = np.cumsum(~matched & ~ign, 1, dtype=np.float64)
                for ti in range(t_n):
                    tp, fp = tps[ti], fps[ti]
                    rc = tp / npig
                    pr = tp / (fp + tp + np.spacing(1))
                    recall[ti, k, a, mi] = rc[-1] if len(tp) else 0.0
                    pr = np.maximum.accumulate(pr[::-1])[::-1] if len(pr) else pr
                    inds = np.searchsorted(rc, self.rec_thresholds, side="left")
                    q = np.zeros(r_n)
                    valid = inds < len(pr)
                    q[valid] = pr[inds[valid]]
                    precision[ti, :, k, a, mi] = q
        return precision, recall

    def compute(self) -> dict:
        """The COCO summary (see the class docstring)."""
        classes = np.unique(np.concatenate(
            [p[2] for p in self._preds] + [t[1] for t in self._targets] + [np.zeros(0, int)]))
        precision, recall = self._accumulate(classes)
        self.precision, self.recall, self.classes = precision, recall, classes
        thr = self.iou_thresholds
        m_last = len(self.max_detection_thresholds) - 1

        def mean(x):
            x = x[x > -1]
            return float(x.mean()) if x.size else -1.0

        def ap(area=0, t=None):
            p = precision[:, :, :, area, m_last]
            if t is not None:
                p = p[np.flatnonzero(np.isclose(thr, t))]
            return mean(p)

        out = {"map": ap(), "map_50": ap(t=0.5), "map_75": ap(t=0.75),
               "map_small": ap(1), "map_medium": ap(2), "map_large": ap(3)}
        for mi, m in enumerate(self.max_detection_thresholds):
            out[f"mar_{m}"] = mean(recall[:, :, 0, mi])
        for a, name in enumerate(_AREAS):
            if a:
                out[f"mar_{name}"] = mean(recall[:, :, a, m_last])
        if self.class_metrics:
            out["map_per_class"] = np.array([mean(precision[:, :, k, 0, m_last])
                                             for k in range(len(classes))])
            out[f"mar_{self.max_detection_thresholds[-1]}_per_class"] = np.array(
                [mean(recall[:, k, 0, m_last]) for k in range(len(classes))])
        out["classes"] = classes.astype(np.int64)
        return out

    def plot_pr_curves(self, path=None, iou_threshold: float = 0.5, class_names=None):
        """Plot each class's interpolated PR curve at one IoU threshold (after
        ``compute()``); saves to ``path`` when given and returns the figure."""
        import matplotlib

        if path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        if not hasattr(self, "precision"):
            raise RuntimeError("MeanAveragePrecision.plot_pr_curves: call compute() first")
        t = int(np.argmin(np.abs(self.iou_thresholds - iou_threshold)))
        fig, ax = plt.subplots(figsize=(5, 4))
        for k, c in enumerate(self.classes):
            p = self.precision[t, :, k, 0, -1]
            if (p > -1).any():
                name = class_names[c] if class_names is not None else f"class {c}"
                ax.plot(self.rec_thresholds, p, label=f"{name} (AP {p.mean():.3f})")
        ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
               title=f"PR curves at IoU {self.iou_thresholds[t]:.2f}")
        ax.legend(fontsize=6)
        if path is not None:
            fig.savefig(path, dpi=100, bbox_inches="tight")
        return fig
