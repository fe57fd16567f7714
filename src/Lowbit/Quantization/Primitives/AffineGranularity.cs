namespace Lowbit.Quantization.Primitives;

/// <summary>Which elements share one scale (and zero point).</summary>
public enum GranularityKind
{
    /// <summary>One scale for the whole tensor.</summary>
    PerTensor,

    /// <summary>One scale per row of a weight [N, K]: per output channel.</summary>
    PerRow,

    /// <summary>One scale per <see cref="Granularity.GroupSize"/> consecutive elements of a row, along K.</summary>
    PerGroup,

    /// <summary>One scale per row of an activation [tokens, K]: per token.</summary>
    PerToken,
}

/// <summary>
/// torchao's granularity, as the block of a 2-D tensor [rows, columns] whose elements share one scale:
/// PerTensor is the block (rows, columns), PerRow and PerToken (1, columns), PerGroup(G) (1, G). Every block
/// is therefore a contiguous run of the row-major tensor, and block b covers elements [b·L, (b + 1)·L) with
/// L = <see cref="BlockLength"/>.
/// </summary>
public readonly record struct Granularity
{
    private Granularity(GranularityKind kind, int groupSize)
    {
        Kind = kind;
        GroupSize = groupSize;
    }

    public GranularityKind Kind { get; }

    /// <summary>Elements per group along K (PerGroup only; 0 otherwise).</summary>
    public int GroupSize { get; }

    public static Granularity PerTensor => new(GranularityKind.PerTensor, 0);

    public static Granularity PerRow => new(GranularityKind.PerRow, 0);

    public static Granularity PerToken => new(GranularityKind.PerToken, 0);

    public static Granularity PerGroup(int size) => size >= 1
        ? new(GranularityKind.PerGroup, size)
        : throw new ArgumentOutOfRangeException(nameof(size), size, "A group holds at least one element.");

    /// <summary>Elements per block of a [rows, columns] tensor: torchao's block_size, flattened.</summary>
    /// <exception cref="ArgumentException">PerGroup(G) with columns not a multiple of G (torchao's
    /// _get_reduction_params asserts the same).</exception>
    public long BlockLength(int rows, int columns) => Kind switch
    {
        GranularityKind.PerTensor => (long)rows * columns,
        GranularityKind.PerRow or GranularityKind.PerToken => columns,
        GranularityKind.PerGroup when columns % GroupSize == 0 => GroupSize,
        GranularityKind.PerGroup => throw new ArgumentException($"{columns} columns are not a multiple of the group size {GroupSize}."),
        _ => throw new ArgumentOutOfRangeException(nameof(Kind), Kind, null),
    };

    public override string ToString() => Kind == GranularityKind.PerGroup ? $"PerGroup({GroupSize})" : Kind.ToString();
}
