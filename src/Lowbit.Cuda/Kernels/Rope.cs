using ILGPU;
using ILGPU.Runtime;

namespace Lowbit.Cuda.Kernels;

/// <summary>What one rotary launch covers.</summary>
public struct RopeShape
{
    public int Rows, Heads, KvHeads, HeadDim;
}

/// <summary>
/// Rotary embedding of q and k, Hugging Face's rotate-half convention (as Backends/Cpu/Rope.cs), and the append
/// of k and v to the cache, in one launch: for row r (position p = start + r), head h, i &lt; D/2, with
/// c = cos[p, i], s = sin[p, i]: x[i] ← x[i]·c − x[i+D/2]·s, x[i+D/2] ← x[i+D/2]·c + x[i]·s. q is rotated in
/// place; k is rotated into the cache row p; v is copied to the cache row p. One thread a q pair, a k pair or
/// a v element. Decode at 32 heads, 8 kv heads, D 128: 2048 + 512 + 1024 threads, launch-bound. One kernel instance
/// a cache element type (<see cref="IKvElements"/>), compiled on first use.
/// </summary>
public sealed class Rope(Accelerator accelerator)
{
    private readonly KvKernels _kernels = new();

    /// <param name="q">[rows, heads·D], rotated in place.</param>
    /// <param name="k">[rows, kvHeads·D]; so is v.</param>
    /// <param name="keys">[maxSeq, kvHeads·D]; so is values.</param>
    /// <param name="cos">[maxPos, D/2]; so is sin.</param>
    /// <param name="inputs">The step's [token, position] (read only when <paramref name="start"/> says so).</param>
    public void Launch<TKv>(AcceleratorStream stream, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, TKv keys, TKv values,
        ArrayView<float> cos, ArrayView<float> sin, RopeShape shape, ArrayView<int> inputs, StepPosition start)
        where TKv : struct, IKvElements
    {
        var kernel = _kernels.Get<TKv, Action<AcceleratorStream, Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, TKv, TKv,
            ArrayView<float>, ArrayView<float>, RopeShape, ArrayView<int>, StepPosition>>(() => accelerator.LoadAutoGroupedKernel<Index1D,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, TKv, TKv, ArrayView<float>, ArrayView<float>, RopeShape, ArrayView<int>, StepPosition>(Kernel));
        kernel(stream, Threads(shape), q, k, v, keys, values, cos, sin, shape, inputs, start);
    }

    private static int Threads(RopeShape shape)
    {
        int half = shape.HeadDim / 2;
        return shape.Rows * ((shape.Heads * half) + (shape.KvHeads * half) + (shape.KvHeads * shape.HeadDim));
    }

    private static void Kernel<TKv>(Index1D index, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, TKv keys, TKv values,
        ArrayView<float> cos, ArrayView<float> sin, RopeShape s, ArrayView<int> inputs, StepPosition start)
        where TKv : struct, IKvElements
    {
        int half = s.HeadDim / 2, kvColumns = s.KvHeads * s.HeadDim;
        int qPairs = s.Rows * s.Heads * half, kPairs = s.Rows * s.KvHeads * half;
        int p0 = start.Resolve(inputs);
        int t = Uniformity.Divergent(index); // the sections' branches split warps
        if (t >= qPairs + kPairs)
        {
            // v element: copy to the cache.
            t -= qPairs + kPairs;
            int row = t / kvColumns;
            values.Store(((long)(p0 + row) * kvColumns) + (t - (row * kvColumns)), v[t]);
            return;
        }
        bool isQ = t < qPairs;
        if (!isQ)
            t -= qPairs;
        int heads = isQ ? s.Heads : s.KvHeads;
        int i = t % half, pair = t / half;
        int r = pair / heads, h = pair - (r * heads);
        long at = ((long)r * heads * s.HeadDim) + (h * s.HeadDim) + i;
        long table = ((long)(p0 + r) * half) + i;
        float c = cos[table], sn = sin[table];
        var x = isQ ? q : k;
        float x0 = x[at], x1 = x[at + half];
        float y0 = (x0 * c) - (x1 * sn), y1 = (x1 * c) + (x0 * sn);
        if (isQ)
        {
            q[at] = y0;
            q[at + half] = y1;
        }
        else
        {
            long cache = ((long)(p0 + r) * kvColumns) + (h * s.HeadDim) + i;
            keys.Store(cache, y0);
            keys.Store(cache + half, y1);
        }
    }
}
