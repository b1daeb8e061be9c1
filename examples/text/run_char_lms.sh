#!/bin/sh
# The two character-level language models behind docs/text.md's numbers, one after the other,
# each with a 30-minute limit. The cosine schedule follows the time limit when that runs
# out before --steps. Results: examples/text/results/ (RESULTS.md).
LIMIT=${LIMIT:-1800}
mkdir -p runs
shendu text train-lm --arch lstm --hidden-size 512 --embed-dim 64 --batch-size 32 --bptt 100 \
  --lr 2e-3 --steps 20000 --time-limit "$LIMIT" --eval-every 100 --eval-tokens 30000 \
  --no-progress --out runs/char-lstm > runs/char-lstm.log 2>&1
shendu text train-lm --arch transformer --num-layers 4 --d-model 128 --nhead 4 --batch-size 32 \
  --bptt 128 --lr 1e-3 --steps 20000 --time-limit "$LIMIT" --eval-every 100 --eval-tokens 30000 \
  --no-progress --out runs/char-gpt > runs/char-gpt.log 2>&1
