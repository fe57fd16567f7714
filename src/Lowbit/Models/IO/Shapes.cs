namespace Lowbit.Models.IO;

internal static class Shapes
{
    /// <summary>"[4096, 11008]", the form every shape takes in an error message.</summary>
    public static string Format(ReadOnlySpan<int> shape)
    {
        var parts = new string[shape.Length];
        for (int i = 0; i < shape.Length; i++)
            parts[i] = shape[i].ToString(System.Globalization.CultureInfo.InvariantCulture);
        return $"[{string.Join(", ", parts)}]";
    }

    /// <summary>Product of the dimensions, or null when it overflows a long.</summary>
    public static long? ElementCount(ReadOnlySpan<int> shape)
    {
        long count = 1;
        foreach (int d in shape)
        {
            if (d != 0 && count > long.MaxValue / d)
                return null;
            count *= d;
        }
        return count;
    }
}
