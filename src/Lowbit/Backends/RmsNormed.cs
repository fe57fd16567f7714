using Lowbit.Tensors;

namespace Lowbit.Backends;

/// <summary>
/// RMSNorm(X)·Weight (per row: X / sqrt(mean(X²) + Eps) · Weight) as the input of a matmul. A backend that can
/// fold the norm into the matmul's reading of x does so (one launch, no normed copy: the GPU's decode GEMVs
/// scale x by Weight as they load it and the dot product by the row's 1/rms at the end); the others write the
/// normed rows to <see cref="Scratch"/> ([rows, columns] of X) first.
/// </summary>
public readonly record struct RmsNormed(TensorView X, Tensor Weight, float Eps, TensorView Scratch);
