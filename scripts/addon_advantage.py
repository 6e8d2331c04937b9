"""How much add-on return one change of choice is worth when the prior acts afterwards.

For states a CartPole prior visits (gymnasium's CartPole-v1, the prior acting greedily), takes each
action once, lets the prior act greedily for up to 300 steps, and sums the discounted add-on
reward -|x - 0.5|/2.4 (gamma 0.99; a fall costs the worst step, -1.2, for ever). Prints the
percentiles of |Q(s, right) - Q(s, left)| beside the prior's own logit gap at the same states:
a residual must be worth omega' times the latter to change the prior's choice.

    python3 scripts/addon_advantage.py tests/data/onnx/sb3_ppo_cartpole.onnx

Needs gymnasium, onnxruntime and numpy (the test venv has them). The prior reads raw observations.
"""
import sys

import gymnasium as gym
import numpy as np
import onnxruntime as ort

GAMMA, HORIZON, WORST = 0.99, 300, -1.2

sess = ort.InferenceSession(sys.argv[1])
name = sess.get_inputs()[0].name


def logits(state):
    return sess.run(None, {name: np.asarray(state, dtype=np.float32)[None]})[0][0]


env = gym.make("CartPole-v1").unwrapped


def value(state, first):
    """Discounted add-on return of `first`, then the prior, from `state`."""
    env.state = np.array(state)
    ret, disc, a = 0.0, 1.0, first
    for _ in range(HORIZON):
        obs, _, terminated, _, _ = env.step(a)
        ret += disc * (-abs(obs[0] - 0.5) / 2.4)
        disc *= GAMMA
        if terminated:
            return ret + disc * WORST / (1 - GAMMA)
        a = int(np.argmax(logits(obs)))
    return ret


env.reset(seed=0)
adv, gap = [], []
for t in range(400):
    state = env.state.copy()
    if t % 20 == 0:
        adv.append(value(state, 1) - value(state, 0))
        env.state = state
        lg = logits(state)
        gap.append(lg[1] - lg[0])
    env.step(int(np.argmax(logits(env.state))))
pct = [10, 50, 90]
print("add-on advantage |Q(right) - Q(left)|, percentiles 10/50/90:", np.percentile(np.abs(adv), pct).round(3))
print("prior's logit gap, same states, percentiles 10/50/90:     ", np.percentile(np.abs(gap), pct).round(2))
