"""Metrics for evaluating models: classification, ranking curves and streaming trackers.

Functions take shendu Tensors, NumPy arrays or lists and return Python floats or NumPy
arrays. Names and argument order follow scikit-learn (``y_true, y_pred``) except
``accuracy``/``top_k_accuracy``, which take ``(input, target)`` like a PyTorch loss.

>>> import shendu as sd
>>> from shendu import metrics
>>> metrics.accuracy(sd.tensor([[0.2, 0.8], [0.9, 0.1]]), sd.tensor([1, 1]))
0.5
>>> metrics.f1_score([0, 1, 1, 2], [0, 1, 2, 2], average='macro')
0.7777777777777777
"""
from .classification import (
    accuracy,
    accuracy_score,
    confusion_matrix,
    f1_score,
    fbeta_score,
    precision,
    precision_recall_fscore_support,
    recall,
    top_k_accuracy,
)
from .detection import MeanAveragePrecision, voc_ap
from .error_analysis import highest_loss_examples, most_confused_pairs, per_class_error
from .ranking import average_precision, precision_recall_curve, roc_auc, roc_curve
from .report import classification_report
from .segmentation import JaccardIndex, mean_iou, pixel_accuracy
from .text import bleu_score, bleu_stats, get_entities, span_f1_score
from .tracker import MetricTracker, RunningMean

# scikit-learn spellings, for users porting code
precision_score = precision
recall_score = recall
average_precision_score = average_precision
roc_auc_score = roc_auc

__all__ = ["bleu_score", "bleu_stats", "get_entities", "span_f1_score",
           "accuracy", "accuracy_score", "top_k_accuracy", "confusion_matrix", "precision",
           "recall", "f1_score", "fbeta_score", "precision_recall_fscore_support",
           "precision_recall_curve", "average_precision", "roc_curve", "roc_auc",
           "classification_report", "MetricTracker", "RunningMean", "precision_score",
           "recall_score", "average_precision_score", "roc_auc_score", "per_class_error",
           "most_confused_pairs", "highest_loss_examples", "MeanAveragePrecision", "voc_ap",
           "JaccardIndex", "mean_iou", "pixel_accuracy"]
