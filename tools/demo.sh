#!/bin/sh
# demo.sh -- the README's main job: installs what is missing, builds chain,
# trains NADE on the 7,000 binarized MNIST digits shipped in examples/data
# (early-stopped on the 1,000 validation digits), reports the test NLL and
# writes 64 samples to samples.png.
set -e
cd "$(dirname "$0")/.."
sh tools/deps.sh --quiet
make -j2 --no-print-directory
D=examples/data
MODEL="examples/nade.chain -D H=${H:-100}"
build/chain train $MODEL --data $D/binarized-train.amat.gz --valid $D/binarized-valid.amat.gz \
	--epochs ${EPOCHS:-40} --batch 100 --lr 0.005 --patience 4 --seed 1 -o nade.safetensors --log nade.csv
build/chain eval $MODEL --params nade.safetensors --data $D/binarized-test.amat.gz
build/chain sample $MODEL --params nade.safetensors -n 64 -o samples.png
echo "wrote nade.safetensors (parameters), nade.csv (training log) and samples.png"
