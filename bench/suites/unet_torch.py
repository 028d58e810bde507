"""PyTorch peer for bench/suites/unet.ts: diffusers' UNet2DConditionModel (SD 1.x layout: DownBlock2D /
CrossAttnDownBlock2D, Transformer2DModel with a 1x1-conv projection, GEGLU feed-forward, nearest 2x
upsampling), written out so that diffusers is not needed, with foliar's configs. One training step is
forward, MSE against a fixed target, backward, AdamW; medians of `steps` steps after `warmup` warm-up steps (default 1).

usage: python3 unet_torch.py configs=<json list of {channels, size}> batch=8 context=77 cross=32 heads=8
       layers=2 steps=5 device=cpu|cuda
Prints one JSON object: {"torch", "threads", "device", "results": [{"params", "train_ms", "forward_ms"}]}."""
import json, math, os, statistics, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F


def gn(c):
    return nn.GroupNorm(32, c, eps=1e-5)


class Resnet(nn.Module):
    def __init__(self, cin, cout, temb):
        super().__init__()
        self.norm1, self.conv1 = gn(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2, self.conv2 = gn(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, t):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(t))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class Attention(nn.Module):
    def __init__(self, dim, ctx_dim, heads):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(ctx_dim, dim, bias=False)
        self.to_v = nn.Linear(ctx_dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x, ctx=None):
        ctx = x if ctx is None else ctx
        b, n, d = x.shape
        split = lambda t: t.view(b, -1, self.heads, d // self.heads).transpose(1, 2)
        o = F.scaled_dot_product_attention(split(self.to_q(x)), split(self.to_k(ctx)), split(self.to_v(ctx)))
        return self.to_out(o.transpose(1, 2).reshape(b, n, d))


class Transformer(nn.Module):
    def __init__(self, dim, ctx_dim, heads):
        super().__init__()
        self.norm = nn.GroupNorm(32, dim, eps=1e-6)
        self.proj_in, self.proj_out = nn.Conv2d(dim, dim, 1), nn.Conv2d(dim, dim, 1)
        self.norm1, self.attn1 = nn.LayerNorm(dim), Attention(dim, dim, heads)
        self.norm2, self.attn2 = nn.LayerNorm(dim), Attention(dim, ctx_dim, heads)
        self.norm3 = nn.LayerNorm(dim)
        self.ff_in, self.ff_out = nn.Linear(dim, dim * 8), nn.Linear(dim * 4, dim)

    def forward(self, x, ctx):
        b, c, h, w = x.shape
        y = self.proj_in(self.norm(x)).permute(0, 2, 3, 1).reshape(b, h * w, c)
        y = y + self.attn1(self.norm1(y))
        y = y + self.attn2(self.norm2(y), ctx)
        a, g = self.ff_in(self.norm3(y)).chunk(2, dim=-1)
        y = y + self.ff_out(a * F.gelu(g))
        return self.proj_out(y.reshape(b, h, w, c).permute(0, 3, 1, 2)) + x


class UNet(nn.Module):
    """down: DownBlock2D then CrossAttnDownBlock2D for every further level; mid: resnet, transformer, resnet."""

    def __init__(self, channels, cross, heads, layers, cin=4):
        super().__init__()
        self.c0, temb = channels[0], channels[0] * 4
        self.lin1, self.lin2 = nn.Linear(channels[0], temb), nn.Linear(temb, temb)
        self.conv_in = nn.Conv2d(cin, channels[0], 3, padding=1)
        self.down, skips, prev = nn.ModuleList(), [channels[0]], channels[0]
        for i, c in enumerate(channels):
            blk = nn.Module()
            blk.resnets = nn.ModuleList([Resnet(prev if j == 0 else c, c, temb) for j in range(layers)])
            blk.attns = nn.ModuleList([Transformer(c, cross, heads) for _ in range(layers)]) if i > 0 else None
            blk.down = nn.Conv2d(c, c, 3, stride=2, padding=1) if i < len(channels) - 1 else None
            skips += [c] * (layers + (1 if blk.down is not None else 0))
            self.down.append(blk)
            prev = c
        self.mid1, self.mid_attn, self.mid2 = Resnet(prev, prev, temb), Transformer(prev, cross, heads), Resnet(prev, prev, temb)
        self.up = nn.ModuleList()
        rev = list(reversed(channels))
        for i, c in enumerate(rev):
            blk = nn.Module()
            res = []
            for j in range(layers + 1):
                res.append(Resnet(prev + skips.pop(), c, temb))
                prev = c
            blk.resnets = nn.ModuleList(res)
            blk.attns = nn.ModuleList([Transformer(c, cross, heads) for _ in range(layers + 1)]) if i < len(rev) - 1 else None
            blk.up = nn.Conv2d(c, c, 3, padding=1) if i < len(rev) - 1 else None
            self.up.append(blk)
        self.norm_out, self.conv_out = gn(channels[0]), nn.Conv2d(channels[0], cin, 3, padding=1)

    def forward(self, x, t, ctx):
        half = self.c0 // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, device=x.device) / half)
        e = t[:, None].float() * freqs[None]
        temb = self.lin2(F.silu(self.lin1(torch.cat([e.cos(), e.sin()], dim=-1))))
        h = self.conv_in(x)
        skips = [h]
        for blk in self.down:
            for j, r in enumerate(blk.resnets):
                h = r(h, temb)
                if blk.attns is not None:
                    h = blk.attns[j](h, ctx)
                skips.append(h)
            if blk.down is not None:
                h = blk.down(h)
                skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, temb), ctx), temb)
        for blk in self.up:
            for j, r in enumerate(blk.resnets):
                h = r(torch.cat([h, skips.pop()], dim=1), temb)
                if blk.attns is not None:
                    h = blk.attns[j](h, ctx)
            if blk.up is not None:
                h = blk.up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main():
    args = dict(a.split("=", 1) for a in sys.argv[1:])
    configs = json.loads(args["configs"])
    batch, context = int(args.get("batch", "8")), int(args.get("context", "77"))
    cross, heads, layers = int(args.get("cross", "32")), int(args.get("heads", "8")), int(args.get("layers", "2"))
    steps, warmup = int(args.get("steps", "5")), int(args.get("warmup", "1"))
    device = torch.device(args.get("device", "cpu"))
    # every core, as lavapipe uses every core for foliar
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    results = []
    for cfg in configs:
        model = UNet(cfg["channels"], cross, heads, layers).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        s = cfg["size"]
        x = torch.randn(batch, 4, s, s, device=device)
        target = torch.randn(batch, 4, s, s, device=device)
        ctx = torch.randn(batch, context, cross, device=device)
        t = (torch.arange(batch, device=device) * 997) % 1000
        train, fwd = [], []
        for i in range(steps + warmup):  # the first `warmup` of each warm up
            t0 = time.perf_counter()
            loss = F.mse_loss(model(x, t, ctx), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()  # the loss on the host, as foliar's step reads it
            if i >= warmup:
                train.append((time.perf_counter() - t0) * 1000)
        with torch.no_grad():
            for i in range(steps + warmup):
                t0 = time.perf_counter()
                y = model(x, t, ctx)
                y[0, 0, 0, 0].item()
                if i >= warmup:
                    fwd.append((time.perf_counter() - t0) * 1000)
        results.append({"params": sum(p.numel() for p in model.parameters()), "train_ms": statistics.median(train), "forward_ms": statistics.median(fwd)})
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device), "results": results}))


main()
