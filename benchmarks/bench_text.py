"""Text workloads of issue 15 vs PyTorch: the LSTM layer alone, a GPT-style training step,
and scaled dot-product attention (forward + backward each)."""
import _bench_util as u


@u.twin_benchmark("lstm_layer_fwd_bwd", "train", items_per_iter=32, unit="seq/s")
def lstm_layer_fwd_bwd(fw):
    """nn.LSTM(256, 256) on (35, 32, 256): forward and backward of the output's sum."""
    fw.seed(0)
    lstm = fw.nn.LSTM(256, 256)
    x = u.rand(fw, 35, 32, 256, requires_grad=True)

    def step():
        lstm.zero_grad()
        x.grad = None
        out, _ = lstm(x)
        out.sum().backward()
    return step


def gpt(nn, vocab=65, width=128, layers=4, heads=4, ctx=128):
    """Token + position embeddings, pre-norm causal blocks (GELU), final norm, tied head."""
    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(vocab, width)
            self.pos = nn.Embedding(ctx, width)
            self.blocks = nn.ModuleList([
                nn.TransformerEncoderLayer(width, heads, 4 * width, 0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
                for _ in range(layers)])
            self.norm = nn.LayerNorm(width)
            self.head = nn.Linear(width, vocab, bias=False)
            self.head.weight = self.tok.weight
            self.mask = nn.Transformer.generate_square_subsequent_mask(ctx)

        def forward(self, idx):  # (batch, ctx)
            x = self.tok(idx) + self.pos.weight[:idx.shape[1]]
            for blk in self.blocks:
                x = blk(x, src_mask=self.mask, is_causal=True)
            return self.head(self.norm(x)).reshape(-1, vocab)
    return GPT()


@u.twin_benchmark("gpt_char_train", "train", items_per_iter=32, unit="seq/s")
def gpt_char_train(fw):
    """GPT-style LM (4 layers, width 128, context 128, vocab 65), batch 32, SGD step."""
    fw.seed(0)
    x = u.labels(fw, 32, 128, classes=65, seed=2)
    y = u.labels(fw, 32 * 128, classes=65, seed=3)
    return u.train_step(fw, gpt(fw.nn), x, y)


@u.twin_benchmark("sdpa_fwd_bwd", "micro", items_per_iter=32, unit="seq/s")
def sdpa_fwd_bwd(fw):
    """F.scaled_dot_product_attention, causal, (32, 4, 128, 32): forward and backward."""
    q, k, v = (u.rand(fw, 32, 4, 128, 32, requires_grad=True, seed=s) for s in (0, 1, 2))

    def step():
        for t in (q, k, v):
            t.grad = None
        fw.F.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward()
    return step
