"""Bar: Sequential(LSTM, LastTimestep, Linear) trained by fit and the same PyTorch model, same
initial weights and batches, Adam with clipping: the loss curves agree over 50 steps."""
import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import lstm_native as ln


class TorchModel(torch.nn.Module):
    def __init__(self, ours):
        super().__init__()
        lstm, head = ours[0], ours[2]
        self.lstm = torch.nn.LSTM(lstm.input_size, lstm.hidden_size, num_layers=lstm.num_layers, batch_first=True)
        self.head = torch.nn.Linear(head.in_features, head.out_features)
        self.lstm.load_state_dict({k: torch.tensor(v) for k, v in lstm.state_dict().items()})
        self.head.load_state_dict({k: torch.tensor(v) for k, v in head.state_dict().items()})

    def forward(self, x, lengths=None):
        if lengths is None:
            out, _ = self.lstm(x)
            return self.head(out[:, -1])
        packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=x.shape[1])
        return self.head(out[torch.arange(len(lengths)), torch.tensor(lengths) - 1])


@pytest.mark.parametrize("variable_length", [False, True])
def test_loss_curves_agree_with_torch_over_50_steps(variable_length):
    rng = np.random.default_rng(0)
    n, steps, batch = 208, 12, 16
    X = rng.standard_normal((n, steps, 3)).astype(np.float32)
    lengths = rng.integers(3, steps + 1, n) if variable_length else None
    last = X[np.arange(n), (lengths if variable_length else np.full(n, steps)) - 1]
    y = (np.sin(last.sum(axis=1)) + 0.1 * X[:, 0, 0]).astype(np.float32)[:, None]

    model = ln.Sequential(ln.LSTM(3, 24, num_layers=2, batch_first=True, seed=1), ln.LastTimestep(),
                          ln.Linear(24, 1, seed=2))
    reference = TorchModel(model)
    ours = []
    model.fit(X, y, loss="mse", optimizer=ln.optim.Adam(model.parameters(), lr=1e-2), epochs=4, batch_size=batch,
              clip_grad_norm=1.0, shuffle=False, verbose=0, lengths=lengths,
              callbacks=[ln.callbacks.LambdaCallback(on_batch_end=lambda b, logs: ours.append(logs["loss"]))])

    opt = torch.optim.Adam(reference.parameters(), lr=1e-2)
    theirs = []
    for epoch in range(4):
        for start in range(0, n, batch):
            xb, yb = torch.tensor(X[start:start + batch]), torch.tensor(y[start:start + batch])
            lb = None if lengths is None else lengths[start:start + batch]
            loss = torch.nn.functional.mse_loss(reference(xb, lb), yb)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(reference.parameters(), 1.0)
            opt.step()
            theirs.append(loss.item())
    ours, theirs = np.array(ours[:50]), np.array(theirs[:50])
    assert len(ours) == 50
    curve_err = np.max(np.abs(ours - theirs) / np.abs(theirs))
    print(f"loss curves: max relative difference {curve_err:.2e} over 50 steps")
    assert curve_err < 1e-4
    assert theirs[-5:].mean() < 0.5 * theirs[:5].mean()   # and it did learn
