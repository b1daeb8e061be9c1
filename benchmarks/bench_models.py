"""The reference workloads of PERFORMANCE.md: whole models, trained and run, vs PyTorch.

A training step is forward + backward + SGD update on a fixed random batch; inference is a
forward pass under ``no_grad`` in eval mode.
"""
import _bench_util as u


@u.twin_benchmark("mlp_train", "train", items_per_iter=128)
def mlp_train(fw):
    """MLP 784-512-512-10, ReLU, cross-entropy, SGD, batch 128."""
    fw.seed(0)
    return u.train_step(fw, fw.fuse(u.mlp(fw.nn)), u.rand(fw, 128, 784),
                        u.labels(fw, 128, classes=10))


@u.twin_benchmark("lenet5_train", "train", items_per_iter=64)
def lenet5_train(fw):
    """LeNet-5 on 1x28x28, SGD, batch 64."""
    fw.seed(0)
    x, y = u.rand(fw, 64, 1, 28, 28), u.labels(fw, 64, classes=10)
    return u.train_step(fw, fw.fuse(u.lenet5(fw.nn)), x, y)


@u.twin_benchmark("cifar_cnn_train", "train", items_per_iter=64)
def cifar_cnn_train(fw):
    """CIFAR CNN (conv32 x2, pool, conv64 x2, pool, fc512, fc10), SGD, batch 64."""
    fw.seed(0)
    x, y = u.rand(fw, 64, 3, 32, 32), u.labels(fw, 64, classes=10)
    return u.train_step(fw, fw.fuse(u.cifar_cnn(fw.nn)), x, y)


@u.twin_benchmark("lstm_lm_train", "train", items_per_iter=32, unit="seq/s")
def lstm_lm_train(fw):
    """LSTM LM: vocab 10k, embed 128, hidden 256, 32 sequences of 35 tokens, SGD."""
    fw.seed(0)
    tokens = u.labels(fw, 35, 32, classes=10_000, seed=2)
    targets = u.labels(fw, 35 * 32, classes=10_000, seed=3)
    return u.train_step(fw, u.lstm_lm(fw.nn), tokens, targets)


@u.twin_benchmark("mlp_infer", "inference", items_per_iter=256)
def mlp_infer(fw):
    """MLP 784-512-512-10 forward, batch 256."""
    fw.seed(0)
    return u.infer_step(fw, fw.fuse(u.mlp(fw.nn)), u.rand(fw, 256, 784))


@u.twin_benchmark("cifar_cnn_infer", "inference", items_per_iter=256)
def cifar_cnn_infer(fw):
    """CIFAR CNN forward, batch 256."""
    fw.seed(0)
    return u.infer_step(fw, fw.fuse(u.cifar_cnn(fw.nn)), u.rand(fw, 256, 3, 32, 32))
