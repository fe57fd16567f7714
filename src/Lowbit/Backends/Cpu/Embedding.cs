using System.Runtime.Intrinsics;
using Lowbit.Tensors;

namespace Lowbit.Backends.Cpu;

/// <summary>
/// destination[i] = table[token, i], widened to f32: the embedding lookup. table is [vocab, dim] in F32,
/// BF16 or F16; the row offset is computed in nint (a 128256×4096 table passes 2^31 bytes in f32).
/// Decode (dim 2048, bf16): 4 KB read, 8 KB written; once per token, not benchmarked.
/// </summary>
public static unsafe class Embedding
{
    /// <exception cref="ArgumentException">table is not rank 2, or destination is not dim long.</exception>
    /// <exception cref="ArgumentOutOfRangeException">token is not in [0, vocab).</exception>
    /// <exception cref="NotSupportedException">table's dtype is not F32, BF16 or F16.</exception>
    public static void Lookup(Tensor table, int token, Span<float> destination) =>
        Lookup(CpuCapabilities.Best, table, token, destination);

    internal static void Lookup(SimdLevel level, Tensor table, int token, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(table);
        if (table.Rank != 2)
            throw new ArgumentException($"Embedding: the table must be [vocab, dim]; got {table}.", nameof(table));
        ArgumentOutOfRangeException.ThrowIfNegative(token);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(token, table.Shape[0]);
        int dim = table.Shape[1];
        if (destination.Length != dim)
            throw new ArgumentException($"Embedding: destination has {destination.Length} elements; dim = {dim} expected for table {table}.", nameof(destination));

        byte* row = (byte*)table.Data + ((nint)token * dim * table.DType.Size());
        fixed (float* pd = destination)
        {
            switch (table.DType)
            {
                case DType.F32: Row<F32Weights>(level, row, dim, pd); break;
                case DType.BF16: Row<Bf16Weights>(level, row, dim, pd); break;
                case DType.F16: Row<F16Weights>(level, row, dim, pd); break;
                default: throw new NotSupportedException($"Embedding: tables of dtype {table.DType} are not supported on the CPU (F32, BF16, F16 are).");
            }
        }
    }

    private static void Row<TW>(SimdLevel level, byte* row, int dim, float* destination)
        where TW : IWeightType
    {
        int i = 0;
        switch (level)
        {
            case SimdLevel.Avx512: Widen<Simd512, Vector512<float>, TW>(row, dim, destination, ref i); break;
            case SimdLevel.Avx2: Widen<Simd256, Vector256<float>, TW>(row, dim, destination, ref i); break;
        }

        Widen<SimdScalar, float, TW>(row, dim, destination, ref i);
    }

    private static void Widen<TS, TV, TW>(byte* row, int dim, float* destination, ref int i)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TW : IWeightType
    {
        for (; i <= dim - TS.Count; i += TS.Count)
            TS.Store(destination + i, TW.Load<TS, TV>(row, i));
    }
}
