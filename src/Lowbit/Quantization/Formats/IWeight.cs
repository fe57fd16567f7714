namespace Lowbit.Quantization.Formats;

/// <summary>
/// The weight of a linear layer, y = x·Wᵀ, stored in some format (dense bf16, int8 per-row, int4
/// per-group, ...). Model code sees only this; the backend picks the kernel for (format, backend).
/// </summary>
public interface IWeight : IDisposable
{
    /// <summary>N: rows of W, the output width.</summary>
    int OutFeatures { get; }

    /// <summary>K: columns of W, the input width.</summary>
    int InFeatures { get; }

    /// <summary>Short format name as the CLI prints it ("bf16", "int8wo", "int4wo-64").</summary>
    string FormatName { get; }

    /// <summary>Bytes a matrix-vector product reads: the packed weight plus its scales and zeros.</summary>
    long ByteLength { get; }
}
