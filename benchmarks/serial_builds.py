"""Each compiled kernel's serial build against its parallel build run on one thread
(``Kernel.serial`` / ``Kernel.parallel``), on the shapes of the LSTM benchmark's steps and
of a 256k-parameter optimizer step: a serial build that LLVM did not vectorise shows as a
ratio well above 1. Kernels built with ``@kernel(serial=False)`` print ~1.00 (one build).

    python benchmarks/serial_builds.py
"""
import time, numpy as np, shendu as sd
from shendu.backend import jit
sd.set_num_threads(1)
rng=np.random.default_rng(0)
def best(f,n=100):
    ts=[]
    for b in range(7):
        t=time.perf_counter()
        for _ in range(n): f()
        ts.append((time.perf_counter()-t)/n)
    return np.median(ts)*1e6
f32=np.float32
def cmp(name, k, args, reset=None):
    def run(d):
        if reset: reset()
        d(*args)
    s=best(lambda: run(k.serial)); p=best(lambda: run(k.parallel))
    print(f"{name:28s} serial {s:8.1f} us  parallel@1thr {p:8.1f} us  x{s/p:.2f}", flush=True)
n=1<<18
p_,g,m,v=(rng.standard_normal(n).astype(f32) for _ in range(4)); v=np.abs(v)
cmp("adam", jit.adam, (p_,g,m,v,np.empty(0,f32),0.1,0.9,True,0.999,0.001,1e-8,0.0,False,False,-1e-3,1.0,1.0))
buf=np.zeros(n,f32)
cmp("sgd_momentum", jit.sgd_momentum, (p_,g,buf,0.01,0.0,False,0.9,1.0,False,False))
N,H=32,256
gates=rng.standard_normal((N,4*H)).astype(f32); g0=gates.copy(); c_prev=rng.standard_normal((N,H)).astype(f32)
c=np.empty((N,H),f32); tc=np.empty((N,H),f32); hh=np.empty((N,H),f32); coef=np.empty((N,4*H),f32); kk=np.empty((N,H),f32)
scale=np.full(4*H,0.5,f32); scale[2*H:3*H]=1; shift=scale.copy(); shift[2*H:3*H]=0; dscale=-scale*scale
def reset(): gates[...]=g0
cmp("lstm_forward_step", jit.lstm_forward_step, (gates,c_prev,c,tc,hh,coef,kk,scale,shift,dscale), reset)
dh=rng.standard_normal((N,H)).astype(f32); dc=rng.standard_normal((N,H)).astype(f32); dout=rng.standard_normal((N,H)).astype(f32); dg=np.empty((N,4*H),f32)
dh0,dc0=dh.copy(),dc.copy()
def reset2(): dh[...]=dh0; dc[...]=dc0
cmp("lstm_backward_step", jit.lstm_backward_step, (dh,dc,dout,kk,coef,gates,dg), reset2)
gg=rng.standard_normal((N,3*H)).astype(f32); gg0=gg.copy(); hg=rng.standard_normal((N,3*H)).astype(f32); hg0=hg.copy()
hp=rng.standard_normal((N,H)).astype(f32); hn=np.empty((N,H),f32); bhn=rng.standard_normal(H).astype(f32)
def reset3(): gg[...]=gg0; hg[...]=hg0
cmp("gru_forward_step", jit.gru_forward_step, (gg,hg,hp,hn,bhn), reset3)
dgx=np.empty((N,3*H),f32); dgh=np.empty((N,3*H),f32)
cmp("gru_backward_step", jit.gru_backward_step, (dh,dout,gg,hg,hp,dgx,dgh), reset2)
x=rng.standard_normal(N*4*H).astype(f32); o=np.empty_like(x)
cmp("tanh_array", jit.tanh_array, (x,o))
bias=rng.standard_normal(4*H).astype(f32)
cmp("lstm_forward_step_vml", jit.lstm_forward_step_vml, (gates,bias,c_prev,c,tc,hh,coef,kk,scale,shift,dscale,1), reset)
