"""Bias/variance diagnosis: which problem to fix first, from a handful of error rates.

    python examples/bias_variance.py

The recipe from the course notes: compare human-level (a proxy for the best possible)
error with training error (the gap is *avoidable bias*), training with dev error
(*variance*), and, when the dev data comes from another distribution, a train-dev set
separates variance from *data mismatch*. The biggest gap names the next thing to try.
The same report is ``shendu diagnose --train-error ... --dev-error ...``.
"""
from shendu.train import diagnose, diagnose_history

CASES = [
    ("cat classifier, underfitting", dict(train_error=0.15, dev_error=0.16, human_error=0.01)),
    ("cat classifier, overfitting", dict(train_error=0.01, dev_error=0.11, human_error=0.005)),
    ("speech, data mismatch", dict(train_error=0.02, train_dev_error=0.025, dev_error=0.10,
                                   human_error=0.01)),
    ("tuned too hard on dev", dict(train_error=0.02, dev_error=0.025, test_error=0.06,
                                   human_error=0.015)),
]


def main() -> None:
    for title, errors in CASES:
        print(f"=== {title}: {errors}")
        print(diagnose(**errors))
        print()
    print("=== learning curves of a run that overfits after epoch 4")
    history = {"train_loss": [1.2, 0.7, 0.45, 0.32, 0.22, 0.15, 0.10, 0.07],
               "val_loss": [1.25, 0.8, 0.6, 0.55, 0.58, 0.63, 0.70, 0.78]}
    print(diagnose_history(history))


if __name__ == "__main__":
    main()
