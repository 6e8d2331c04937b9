"""The expected n-step residual soft operator off-policy: its spectral radius at the fixed point,
without and with Retrace's traces, over random near-deterministic 5-state MDPs (0.9 to one
successor) whose behaviour is the prior. Prints the worst instance (the one
`algo::rql_discrete`'s contraction test uses) and both radii.

    python3 scripts/nstep_contraction.py        # needs numpy
"""
import numpy as np
S,A,g,n,al,om=5,2,0.99,10,0.3,0.3
def soft_v(Q,lp0): 
    z=(Q+om*lp0)/al; m=z.max(1,keepdims=True); return (al*(m[:,0]+np.log(np.exp(z-m).sum(1))))
def qstar(P,R,lp0):
    Q=np.zeros((S,A))
    for _ in range(5000): Q=R+g*P@soft_v(Q,lp0)
    return Q
def T(Q,P,R,lp0,mu,traces):
    V=soft_v(Q,lp0); logpi=(Q+om*lp0-V[:,None])/al; pi=np.exp(logpi)
    c=np.minimum(1,pi/mu) if traces else np.ones_like(mu)
    out=np.zeros((S,A))
    for s0 in range(S):
        for a0 in range(A):
            tot=R[s0,a0]; D=P[s0,a0].copy()
            for k in range(1,n):
                tot+=g**k*(D@(V-(mu*c*(Q-R)).sum(1)))
                D=np.einsum('s,sa,sat->t',D,mu*c,P)
            tot+=g**n*(D@V); out[s0,a0]=tot
    return out
def radius(P,R,lp0,mu,traces):
    Q=qstar(P,R,lp0); base=T(Q,P,R,lp0,mu,traces); J=np.zeros((S*A,S*A)); e=1e-5
    for i in range(S*A):
        d=np.zeros(S*A); d[i]=e; J[:,i]=((T(Q+d.reshape(S,A),P,R,lp0,mu,traces)-base)/e).ravel()
    return max(abs(np.linalg.eigvals(J)))
rng=np.random.default_rng(0); best=None
for trial in range(300):
    P=np.full((S,A,S),0.0)
    for s in range(S):
        for a in range(A):
            P[s,a]=0.1/(S-1); P[s,a,rng.integers(S)]=0.9
    P/=P.sum(2,keepdims=True)
    R=rng.normal(size=(S,A))
    pri=rng.dirichlet([0.3,0.3],size=S); pri=np.clip(pri,0.01,None); pri/=pri.sum(1,keepdims=True)
    lp0=np.log(pri)
    r=radius(P,R,lp0,pri,False)
    if best is None or r>best[0]: best=(r,P,R,pri)
r,P,R,pri=best
print("uncorrected radius",r,"retrace",radius(P,R,np.log(pri),pri,True))
np.set_printoptions(precision=4,suppress=True)
print("succ",[[int(np.argmax(P[s,a])) for a in range(A)] for s in range(S)])
print("R",R.round(3).tolist()); print("prior",pri.round(4).tolist())
