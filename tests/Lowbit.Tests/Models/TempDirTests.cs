namespace Lowbit.Tests.Models;

/// <summary>Base for tests that build files: each test gets its own <see cref="TempDir"/>, removed afterwards.</summary>
public abstract class TempDirTests : IDisposable
{
    protected TempDir Dir { get; } = new();

    public void Dispose()
    {
        Dir.Dispose();
        GC.SuppressFinalize(this);
    }
}
