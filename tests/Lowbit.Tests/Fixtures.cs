namespace Lowbit.Tests;

/// <summary>Paths of the files under tests/fixtures, copied next to the test assembly.</summary>
internal static class Fixtures
{
    public static string Root => Path.Combine(AppContext.BaseDirectory, "fixtures");

    public static string Path(params string[] parts) => System.IO.Path.Combine([Root, .. parts]);

    /// <summary>A fresh empty directory under the system temp folder, deleted when disposed.</summary>
    public static TempDirectory TempDirectory() => new();
}

internal sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        FullName = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "lowbit-tests-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(FullName);
    }

    public string FullName { get; }

    public string Path(string name) => System.IO.Path.Combine(FullName, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(FullName, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
