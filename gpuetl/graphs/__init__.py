"""Daily EWM correlation graphs: batched correlation, shrinkage, kNN and graph features, on either backend.

Definitions (every number comes from configs/graph/*.yaml; defaults in brackets):

- **Returns**: the dates x codes matrix of 1-day simple returns of the forward-adjusted close
  (``close[t] / close[t-1] - 1`` on the panel's date grid; NaN when either close is missing or the result is
  not finite), and 5-day returns alike for the peer features. Codes are indexed 0..N-1 in sorted Code order.
- **Window**: the graph of day t uses the returns of the `window` [60] dates ending at t (t included);
  dates before the first one count as missing.
- **Weights**: ``w_s = 0.5 ** ((t - s) / halflife)`` [30] for the window's date s (the day itself has
  weight 1): pandas' ``ewm(halflife=...)`` weights with adjust=True. Their scale cancels in a correlation.
- **Coverage**: code i is a node of day t when it has at least ``ceil(min_coverage * window)`` [48] observed
  returns in the window and a weighted variance ``S_ii`` above 1e-12 times its weighted mean square
  ``sum_s w_s m_is r_is^2`` (a constant series is not a node); other codes have no edges and NaN features.
  `gpuetl graph` also limits the nodes of day t to the codes with a dataset row on t (the dataset's universe).
- **EWM demeaning and correlation**: with m_is = 1 where r_is is observed (else 0),
  ``mu_i = sum_s w_s m_is r_is / sum_s w_s m_is`` (the EWM mean over the code's own observed days),
  ``x_is = m_is (r_is - mu_i)``, ``S_ij = sum_s w_s x_is x_js`` (one batched matmul for many days), and
  ``rho_ij = S_ij / sqrt(S_ii S_jj)``: pairwise products over the days both codes traded, variances over each
  code's own days. With no missing days this is the EWM-weighted Pearson correlation; with gaps it is still
  a correlation matrix (positive semi-definite, unit diagonal, |rho| <= 1).
- **Shrinkage**: ``rho_s = (1 - gamma) rho + gamma T`` [gamma 0.1] off the diagonal, with T = 0 (`identity`)
  or T = the day's mean off-diagonal rho over its nodes (`constant_correlation`).
- **Grid**: rho_s is rounded to a multiple of 2^-grid_bits [32] (ties to even) before any comparison, so
  weights that differ only in the last bits (two BLAS libraries, GPU vs CPU) compare equal and the tie rule
  decides, identically on both backends. It moves a weight by at most 1.2e-10.
- **kNN, threshold, tie rule**: for each node i, the candidates are the other nodes j with
  ``rho_s[i, j] >= threshold`` [0.25]; i keeps the `k` [15] best, ranked by weight descending, then by code
  index ascending (the smaller index wins a tie).
- **Symmetrisation**: union: the undirected edge {i, j} exists when j is among i's kept neighbours or i among
  j's; its weight is rho_s[i, j] (exactly symmetric: each pair is computed once). Degrees can exceed k.
- **Graph days**: every `every_n_days`-th date from the first output date; a date between two graph days
  takes the features of the last graph at or before it (never a later one).
- **Edges** (``<out>/edges/year=YYYY/*.parquet``): Date, src, dst, weight, one row per undirected edge with
  src < dst (add the reverse for a message-passing edge_index); src/dst index ``<out>/codes.parquet``
  (index, Code); weight is written as float32.
- **Graph features** per (Code, Date), from the day's graph (NaN where the code is not a node):
  ``graph_degree``, ``graph_wdegree`` (sum of edge weights), ``graph_pagerank`` (weighted, damping 0.85,
  normalised to 1 per day), ``graph_community`` (Louvain, labels 0.. per day in the order of each community's
  smallest code index) and ``graph_community_size``, and ``graph_peer_ret_1d`` / ``graph_peer_ret_5d``: the
  edge-weighted mean of the neighbours' 1-/5-day returns on that date over the neighbours with a return
  (``sum_j w_ij r_j / sum_j w_ij``), NaN when none has one.

Leakage: the graph and every feature of day t use returns dated at or before t only (tests perturb every
return after t and require bit-identical graphs and features up to t on the CPU backend).
"""
