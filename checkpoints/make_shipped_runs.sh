#!/usr/bin/env bash
# Re-create the pretrained runs shipped in checkpoints/ (run from the repo root; ~4 minutes on 2 cores).
set -euo pipefail
rm -rf checkpoints/fashion-default checkpoints/fashion-2d checkpoints/fashion-linear-gaussian \
  checkpoints/fashion-iwae5 checkpoints/fashion-vae5
python -m vae_tf train --data fashion_mnist --out checkpoints/fashion-default
python -m vae_tf train --data fashion_mnist --latent-dim 2 --epochs 10 --out checkpoints/fashion-2d
python -m vae_tf train --data fashion_mnist --decoder linear --likelihood gaussian --sigma learned \
  --out checkpoints/fashion-linear-gaussian
# A VAE and an IWAE trained alike (k = 5 samples per image, smaller hidden layers: ~1 minute each)
python -m vae_tf train --data fashion_mnist --objective iwae --mc-samples 5 --hidden 256,128 --out checkpoints/fashion-iwae5
python -m vae_tf train --data fashion_mnist --objective elbo --mc-samples 5 --hidden 256,128 --out checkpoints/fashion-vae5
rm -f checkpoints/*/optimizer.npz  # Adam's state is only for resuming; shipped runs stay a few MB
