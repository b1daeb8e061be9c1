"""Each of ResNet-18's 3x3 stride-1 convolutions (small input, batch 64) by the direct
kernel and by Winograd's F(2x2, 3x3), shendu alone, forward in no_grad, median of 15
after 0.7 s of warm-up; also the largest difference between the two over the largest
output (both float32).

    python benchmarks/winograd_convs.py
    python benchmarks/winograd_convs.py --torch   # PyTorch's, in a process of its own
"""
import time, sys, numpy as np, shendu as sd
from shendu.backend import runtime, jit
sd.set_num_threads(2)
def bench(f, reps=15):
    t0=time.perf_counter()
    while time.perf_counter()-t0<0.7: f()
    ts=[]
    for _ in range(reps):
        t=time.perf_counter(); f(); ts.append(time.perf_counter()-t)
    return np.median(ts)*1e3
N=64
if "--torch" in sys.argv:
    import torch
    torch.set_num_threads(2)
    for name, c, o, h in [("l1", 64, 64, 32), ("l2", 128, 128, 16), ("l3", 256, 256, 8),
                          ("l4", 512, 512, 4), ("odd", 128, 96, 7)]:
        x = torch.randn(N, c, h, h)
        w = torch.randn(o, c, 3, 3) / np.sqrt(9 * c)
        with torch.no_grad():
            print(name, f"torch {bench(lambda: torch.nn.functional.conv2d(x, w, padding=1)):.2f}")
    sys.exit()
shapes=[("l1",64,64,32),("l2",128,128,16),("l3",256,256,8),("l4",512,512,4),("odd",128,96,7)]
for name,c,o,h in shapes:
    x=sd.tensor(np.random.randn(N,c,h,h).astype(np.float32)); w=sd.tensor((np.random.randn(o,c,3,3)/np.sqrt(9*c)).astype(np.float32))
    with sd.no_grad():
        r=[]; outs=[]
        for wg in (False,True):
            with runtime.use(winograd=wg):
                r.append(bench(lambda: sd.nn.functional.conv2d(x,w,padding=1)))
                outs.append(sd.nn.functional.conv2d(x,w,padding=1).numpy())
    err=np.abs(outs[0]-outs[1]).max()/np.abs(outs[0]).max()
    print(name, f"direct {r[0]:.2f} winograd {r[1]:.2f} err {err:.1e}")
