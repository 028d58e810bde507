"""PyTorch peer for bench/suites/resnet.ts: ResNet18 (torchvision's layout, written out so
torchvision is not needed) training steps, SGD momentum 0.9, batch N, on the CPU (default) or
device=cuda (on a machine with an NVIDIA GPU, the same GPU foliar's WebGPU adapter runs on).
Prints one JSON object: {"torch": version, "threads": n, "device": d, "results": {size: median_ms}}."""
import json, os, sys, time, statistics
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (self.down(x) if self.down is not None else x))


class ResNet18(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        layers, cin = [], 64
        for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = self.layers(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def main():
    args = dict(a.split("=", 1) for a in sys.argv[1:])
    sizes = [int(s) for s in args.get("sizes", "64,128").split(",")]
    batch, steps, warmup = int(args.get("batch", "32")), int(args.get("steps", "3")), int(args.get("warmup", "1"))
    device = torch.device(args.get("device", "cpu"))
    # some builds default to one thread: use every core, as foliar's lavapipe does
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    results = {}
    for s in sizes:
        model = ResNet18(4).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x, y = torch.randn(batch, 3, s, s, device=device), torch.arange(batch, device=device) % 4
        times = []
        for i in range(steps + warmup):  # the first `warmup` steps warm up
            t0 = time.perf_counter()
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()  # waits for the device, as foliar's timing reads the loss back
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1000)
        results[str(s)] = statistics.median(times)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device), "results": results}))


main()
