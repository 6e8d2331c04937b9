"""A gymnasium environment seen as a plant: named signals, named commands, a safe command.

Signals are the flattened observation (``gymnasium.spaces.flatten``) followed by the requested
``info`` keys (0.0 when a key is missing, e.g. after ``reset`` for most environments).
Commands: one per dimension of a Box action space (clipped to its bounds), one per entry of a
MultiDiscrete/MultiBinary space, or one for a Discrete space (the action index, rounded and
clipped to 0..n−1, then offset by the space's ``start``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import protocol as p


class LayoutError(ValueError):
    """The environment or the options give a layout the protocol cannot carry."""


class PlantFault(RuntimeError):
    """The environment failed (exception) or produced a non-finite reading."""


@dataclass
class StepResult:
    values: List[float]
    terminated: bool
    truncated: bool
    success: bool


def _check_names(names: Sequence[str], what: str) -> None:
    for n in names:
        b = n.encode("utf-8")
        if not b:
            raise LayoutError(f"{what} name must not be empty")
        if len(b) > p.MAX_NAME_LEN:
            raise LayoutError(f"{what} name {n!r} is {len(b)} bytes of UTF-8; at most "
                              f"{p.MAX_NAME_LEN} are allowed")
        if 0 in b:
            raise LayoutError(f"{what} name {n!r} contains a NUL byte")
    if len(set(names)) != len(names):
        raise LayoutError(f"{what} names are not unique: {', '.join(names)}")


class GymPlant:
    def __init__(
        self,
        env_id: str,
        env_kwargs: Optional[Dict[str, Any]] = None,
        signal_names: Optional[Sequence[str]] = None,
        command_names: Optional[Sequence[str]] = None,
        info_keys: Sequence[str] = (),
        safe_command: Optional[Sequence[float]] = None,
        success_info: Optional[str] = None,
        seed: Optional[int] = None,
    ) -> None:
        import gymnasium as gym
        from gymnasium import spaces

        self._spaces = spaces
        self.env_id = env_id
        self.env = gym.make(env_id, **(env_kwargs or {}))
        self.obs_space = self.env.observation_space
        self.act_space = self.env.action_space
        self.info_keys = list(info_keys)
        self.success_info = success_info

        n_obs = int(spaces.flatdim(self.obs_space))
        if signal_names is None:
            obs_names = [f"obs{i}" for i in range(n_obs)]
        else:
            obs_names = list(signal_names)
            if len(obs_names) != n_obs:
                raise LayoutError(
                    f"--signals gives {len(obs_names)} names but {env_id}'s observation has "
                    f"{n_obs} values ({self.obs_space}); give exactly {n_obs} names (the info keys "
                    f"of --info are added after them)")
        self.signal_names = obs_names + self.info_keys
        if len(self.signal_names) > p.MAX_SIGNALS:
            raise LayoutError(f"{len(self.signal_names)} signals; the protocol carries at most "
                              f"{p.MAX_SIGNALS}")
        self.n_obs = n_obs

        a = self.act_space
        if isinstance(a, spaces.Box):
            self.kind = "box"
            self.n_cmd = int(np.prod(a.shape))
            default_names = [f"a{i}" for i in range(self.n_cmd)]
            self.low = np.broadcast_to(a.low, a.shape).astype(np.float64).ravel()
            self.high = np.broadcast_to(a.high, a.shape).astype(np.float64).ravel()
        elif isinstance(a, spaces.Discrete):
            self.kind = "discrete"
            self.n_cmd = 1
            default_names = ["action"]
            self.low = np.zeros(1)
            self.high = np.array([float(a.n - 1)])
        elif isinstance(a, spaces.MultiDiscrete):
            self.kind = "multidiscrete"
            self.n_cmd = int(np.prod(a.shape))
            default_names = [f"a{i}" for i in range(self.n_cmd)]
            self.low = np.zeros(self.n_cmd)
            self.high = (np.asarray(a.nvec).ravel() - 1).astype(np.float64)
        elif isinstance(a, spaces.MultiBinary):
            self.kind = "multibinary"
            self.n_cmd = int(np.prod(a.shape))
            default_names = [f"a{i}" for i in range(self.n_cmd)]
            self.low = np.zeros(self.n_cmd)
            self.high = np.ones(self.n_cmd)
        else:
            raise LayoutError(f"unsupported action space {a} (Box, Discrete, MultiDiscrete and "
                              f"MultiBinary are supported)")
        if self.n_cmd > p.MAX_COMMANDS:
            raise LayoutError(f"{self.n_cmd} commands; the protocol carries at most "
                              f"{p.MAX_COMMANDS}")
        if command_names is None:
            self.command_names = default_names
        else:
            self.command_names = list(command_names)
            if len(self.command_names) != self.n_cmd:
                raise LayoutError(f"--commands gives {len(self.command_names)} names but "
                                  f"{env_id}'s action space {a} needs {self.n_cmd}")
        _check_names(self.signal_names, "signal")
        _check_names(self.command_names, "command")
        self.layout_hash = p.layout_hash(self.signal_names, self.command_names)

        if safe_command is None:
            self.safe = np.clip(np.zeros(self.n_cmd), self.low, self.high)
        else:
            safe = np.asarray([float(v) for v in safe_command], dtype=np.float64)
            if safe.size != self.n_cmd:
                raise LayoutError(f"--safe-command gives {safe.size} values, the action space "
                                  f"needs {self.n_cmd}")
            if np.any(safe < self.low) or np.any(safe > self.high) or not np.all(np.isfinite(safe)):
                raise LayoutError(f"--safe-command {list(safe)} is outside the action space "
                                  f"bounds [{list(self.low)}, {list(self.high)}]")
            self.safe = safe
        self.safe = np.asarray(self.safe, dtype=np.float64)

        self.last_values: List[float] = [0.0] * len(self.signal_names)
        self.commands_clipped = 0
        # Initial readings (also checks that the env works at all).
        if seed is not None:
            try:
                self.act_space.seed(seed)
            except Exception:  # pragma: no cover - cosmetic
                pass
        self.reset(seed)

    # ----------------------------------------------------------------------------------------
    def _values(self, obs: Any, info: Dict[str, Any]) -> List[float]:
        flat = np.asarray(self._spaces.flatten(self.obs_space, obs), dtype=np.float64).ravel()
        extra = []
        for k in self.info_keys:
            v = info.get(k, 0.0) if isinstance(info, dict) else 0.0
            try:
                arr = np.asarray(v, dtype=np.float64).ravel()
            except (TypeError, ValueError):
                raise PlantFault(f"info[{k!r}] = {v!r} is not a number") from None
            if arr.size != 1:
                raise PlantFault(f"info[{k!r}] has {arr.size} values; only scalars can be signals")
            extra.append(float(arr[0]))
        vals = np.concatenate([flat, np.asarray(extra, dtype=np.float64)]).astype(np.float32)
        if not np.all(np.isfinite(vals)):
            bad = [self.signal_names[i] for i in np.flatnonzero(~np.isfinite(vals))]
            raise PlantFault(f"non-finite reading in {', '.join(bad)}")
        return [float(v) for v in vals]

    def reset(self, seed: Optional[int]) -> List[float]:
        """Puts the plant in its initial state; returns the readings. Raises PlantFault."""
        try:
            obs, info = self.env.reset(seed=seed)
        except Exception as e:  # the plant's own failure
            raise PlantFault(f"reset failed: {type(e).__name__}: {e}") from e
        vals = self._values(obs, info)
        self.last_values = vals
        return vals

    def action(self, values: Optional[Sequence[float]]) -> Tuple[Any, np.ndarray]:
        """The env action for the command values (None = the safe command); also returns the
        clipped command vector."""
        v = self.safe if values is None else np.asarray(values, dtype=np.float64)
        if self.kind != "box":
            v = np.rint(v)
        c = np.clip(v, self.low, self.high)
        if values is not None and not np.array_equal(c, v):
            self.commands_clipped += 1
        a = self.act_space
        if self.kind == "box":
            act = c.reshape(a.shape).astype(a.dtype)
        elif self.kind == "discrete":
            act = int(c[0]) + int(a.start)
        elif self.kind == "multidiscrete":
            act = (c.reshape(a.shape) + np.asarray(getattr(a, "start", 0))).astype(a.dtype)
        else:
            act = c.reshape(a.shape).astype(a.dtype)
        return act, c

    def step(self, values: Optional[Sequence[float]]) -> StepResult:
        """One control step with the command values (None = the safe command). Raises
        PlantFault (the last finite readings stay in ``last_values``)."""
        act, _ = self.action(values)
        try:
            obs, _reward, terminated, truncated, info = self.env.step(act)
        except Exception as e:
            raise PlantFault(f"step failed: {type(e).__name__}: {e}") from e
        vals = self._values(obs, info)
        self.last_values = vals
        terminated, truncated = bool(terminated), bool(truncated)
        if self.success_info is not None:
            success = bool((terminated or truncated) and info.get(self.success_info, False))
        else:
            success = terminated
        return StepResult(vals, terminated, truncated, success)

    def close(self) -> None:
        try:
            self.env.close()
        except Exception:  # pragma: no cover
            pass

    def layout_text(self) -> str:
        lines = [f"env {self.env_id}",
                 f"observation space {self.obs_space}",
                 f"action space {self.act_space}",
                 f"signals ({len(self.signal_names)}):"]
        for i, n in enumerate(self.signal_names):
            src = "info" if i >= self.n_obs else "obs"
            lines.append(f"  {i:2d} {n}  [{src}]")
        lines.append(f"commands ({len(self.command_names)}):")
        for i, n in enumerate(self.command_names):
            lines.append(f"  {i:2d} {n}  [{self.low[i]:g} .. {self.high[i]:g}]")
        lines.append("safe command: " + ", ".join(f"{v:g}" for v in self.safe))
        lines.append(f"layout hash: 0x{self.layout_hash:08X}")
        return "\n".join(lines)


