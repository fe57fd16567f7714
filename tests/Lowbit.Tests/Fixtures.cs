namespace Lowbit.Tests;

/// <summary>Paths of the files under tests/fixtures, copied next to the test assembly.</summary>
internal static class Fixtures
{
    public static string Root => Path.Combine(AppContext.BaseDirectory, "fixtures");

    public static string Get(params string[] parts) => Path.Combine([Root, .. parts]);
}
