"""Stateless neural-network functions (``import shendu.nn.functional as F``), PyTorch's names."""
from .activation import (elu, gelu, glu, hardtanh, leaky_relu, log_softmax, logsigmoid, maxout,
                         mish, relu, relu6, selu, sigmoid, silu, softmax, softmin, softplus,
                         softsign, step, tanh)
from .conv import (adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool1d,
                   avg_pool2d, conv1d, conv2d, conv_transpose1d, conv_transpose2d, max_pool1d,
                   max_pool2d)
from .layers import (batch_norm, bilinear, dropout, dropout1d, dropout2d, embedding, group_norm,
                     instance_norm, interpolate, layer_norm, linear, normalize, one_hot, pad,
                     scaled_dot_product_attention)
from .loss import (binary_cross_entropy, binary_cross_entropy_with_logits, cosine_embedding_loss,
                   cosine_similarity, cross_entropy, gaussian_nll_loss, hinge_embedding_loss,
                   huber_loss, kl_div, l1_loss, margin_ranking_loss, mse_loss, multi_margin_loss,
                   nll_loss, pairwise_distance, smooth_l1_loss, soft_margin_loss,
                   triplet_margin_loss)
