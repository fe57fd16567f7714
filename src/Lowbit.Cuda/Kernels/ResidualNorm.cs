using ILGPU;

namespace Lowbit.Cuda.Kernels;

/// <summary>
/// The residual add and the next block's RMSNorm done by the GEMV that produces the block's output (o and down
/// projections at decode; IBackend.LinearAddRmsNorm): each output row r adds into the residual stream,
/// residual[r] += y[r], and its square joins the group's partial sum; the last group to finish (a ticket after a
/// device-wide fence, threadFenceReduction's pattern) sums the partials and writes normed = residual·(1/rms)·g.
/// The GEMV loop is untouched (the work comes after it), and the separate norm launch is gone. Off (the
/// default) for a plain GEMV.
/// </summary>
public struct ResidualNorm
{
    /// <summary>[Width]: the residual stream, added to.</summary>
    public ArrayView<float> Residual;

    /// <summary>[Width]: the norm weight g.</summary>
    public ArrayView<float> Weight;

    /// <summary>[Width]: RMSNorm(residual)·g.</summary>
    public ArrayView<float> Normed;

    /// <summary>One float a group of the launch.</summary>
    public ArrayView<float> Partials;

    /// <summary>[1], zero between launches (the last group puts it back).</summary>
    public ArrayView<int> Ticket;

    public float Eps;

    /// <summary>1 when the GEMV adds into the residual and norms it.</summary>
    public int On;

    /// <summary>The GEMV's N: the residual's width.</summary>
    public int Width;

    /// <summary>residual[row] += value; returns the new value's square (what the row adds to Σx²).</summary>
    public readonly float Add(int row, float value)
    {
        float sum = Residual[row] + value;
        Residual[row] = sum;
        return sum * sum;
    }

    /// <summary>Every thread of the group calls it once its rows are added, with the squares it added: the group's
    /// partial goes out, and the last group writes the normed row.</summary>
    /// <param name="shared">32 floats of shared memory (free for the reductions here).</param>
    /// <param name="last">One int of shared memory.</param>
    public readonly void Finish(float squares, ArrayView<float> shared, ArrayView<int> last)
    {
        // The rows this thread added are made visible device-wide before the group takes its ticket.
        MemoryFence.DeviceLevel();
        float group = BlockReduce.Sum(squares, shared);
        if (Group.IdxX == 0)
        {
            Partials[Grid.IdxX] = group;
            MemoryFence.DeviceLevel();
            last[0] = Atomic.Add(ref Ticket[0], 1) == Grid.DimX - 1 ? 1 : 0;
        }
        Group.Barrier();
        if (last[0] == 0)
            return;
        MemoryFence.DeviceLevel();
        float total = 0f;
        for (int g = Group.IdxX; g < Grid.DimX; g += Group.DimX)
            total += Partials[g];
        total = BlockReduce.Sum(total, shared);
        float scale = 1f / MathF.Sqrt((total / Width) + Eps);
        for (int i = Group.IdxX; i < Width; i += Group.DimX)
            Normed[i] = Residual[i] * scale * Weight[i];
        if (Group.IdxX == 0)
            Ticket[0] = 0;
    }
}
