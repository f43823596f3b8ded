"""Train a tiny FlexNet-style model on real handwritten digits (scikit-learn's 8×8 digits, upsampled to 16×16)
and print how each FlexConv's learned mask, and with it its cropped kernel size, changes during training."""
import argparse

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from flexlib import FlexConv, param_groups


class TinyFlexNet(nn.Module):
    def __init__(self, width: int = 16, classes: int = 10):
        super().__init__()
        self.convs = nn.ModuleList([FlexConv(1, width, 2), FlexConv(width, width, 2)])
        self.norms = nn.ModuleList([nn.BatchNorm2d(width), nn.BatchNorm2d(width)])
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        for conv, norm in zip(self.convs, self.norms):
            x = F.relu(norm(conv(x)))
        return self.head(x.mean(dim=(2, 3)))


def kernel_sizes(model, size):
    return [tuple(conv.kernel_for(size).shape[2:]) for conv in model.convs]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
    y = torch.tensor(digits.target)
    perm = torch.randperm(len(x))
    train, test = perm[:1400], perm[1400:]
    model = TinyFlexNet()
    opt = torch.optim.Adam(param_groups(model, lr=0.01))  # mask parameters at 0.1× lr (App. D.2)
    size = (16, 16)
    print("data: scikit-learn handwritten digits (1797 real 8×8 images, upsampled to 16×16)")
    print(f"initial cropped kernel sizes: {kernel_sizes(model, size)} (uncropped: 17×17)")
    for epoch in range(args.epochs):
        model.train()
        for idx in train[torch.randperm(len(train))].split(64):
            opt.zero_grad()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = (model(x[test]).argmax(1) == y[test]).float().mean().item()
        sigmas = [[round(s, 3) for s in c.mask.sigma.tolist()] for c in model.convs]
        print(f"epoch {epoch + 1}: loss {loss.item():.3f}  test acc {acc:.3f}  mask sigma {sigmas}  "
              f"kernel sizes {kernel_sizes(model, size)}")
    print(f"learned cropped kernel sizes: {kernel_sizes(model, size)}")


if __name__ == "__main__":
    main()
